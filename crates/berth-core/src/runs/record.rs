//! The first record of an admitted run.

use chrono::{DateTime, Utc};

use super::request::{RunRequest, Workload};
use crate::model::handle::Placement;
use crate::model::kind::Kind;
use crate::model::run::{RunId, RunRecord, RunStatus, RunUsage};

impl RunRecord {
    /// The first record of an admitted run of `req`: pending, on the cold
    /// path until a member takes it, with nothing made yet.
    pub(super) fn pending(
        id: RunId,
        req: &RunRequest,
        image: String,
        container_name: String,
        created_at: DateTime<Utc>,
    ) -> RunRecord {
        RunRecord {
            runtime: None,
            id,
            tenant: req.tenant.clone(),
            session: req.session.clone(),
            name: req.name.clone(),
            image,
            kind: Some(match req.workload {
                Workload::Code { .. } => Kind::Code,
                Workload::Tool { .. } => Kind::Tool,
            }),
            status: RunStatus::Pending,
            exit_code: None,
            stdout: String::new(),
            stderr: String::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            result: None,
            usage: RunUsage::default(),
            container_id: None,
            placement: Placement::Local,
            container_name,
            container_removed: false,
            error: None,
            path: "cold".into(),
            plan: None,
            created_at,
            finished_at: None,
        }
    }
}
