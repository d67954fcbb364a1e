//! Admission: a request becomes the container spec it runs as, under a
//! fresh run id and name, or is refused; nothing is created here.

use std::time::Duration;

use super::request::{param_var, RunRequest, Workload, MAX_CODE_BYTES};
use super::{RunError, Runs};
use crate::model::run::RunId;
use crate::policy::ContainerRequest;
use crate::spec::{labels, ContainerSpec, Kind};

/// A request admitted by policy: the run's id, its container's name, the
/// spec it runs as and its deadline.
pub(super) struct Admitted {
    pub id: RunId,
    pub name: String,
    pub spec: ContainerSpec,
    pub timeout: Duration,
}

impl Runs {
    /// Admits a request and turns it into a container request, without creating anything.
    fn prepare(&self, req: &RunRequest, name: &str) -> Result<(ContainerRequest, Duration), RunError> {
        let (kind, image, cmd) = match &req.workload {
            Workload::Tool { image, command } => (Kind::Tool, image.clone(), command.clone()),
            Workload::Code { language, code } => {
                let lang = self.languages.get(language).ok_or_else(|| {
                    RunError::UnknownLanguage(
                        language.clone(),
                        self.languages.keys().cloned().collect::<Vec<_>>().join(", "),
                    )
                })?;
                if code.len() > MAX_CODE_BYTES {
                    return Err(RunError::BadRequest(format!("code: {} bytes exceed {MAX_CODE_BYTES}", code.len())));
                }
                if code.contains('\0') {
                    return Err(RunError::BadRequest("code: contains a NUL byte".into()));
                }
                let mut cmd = lang.command.clone();
                cmd.push(code.clone());
                (Kind::Code, lang.image.clone(), Some(cmd))
            }
        };
        let timeout = self.policy.timeout(kind, req.timeout)?;
        let mut env = req.env.clone();
        for (key, value) in &req.parameters {
            let var =
                param_var(key).ok_or_else(|| RunError::BadRequest(format!("parameters: {key:?} is not a name")))?;
            let value = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            env.insert(var, value);
        }
        env.insert("BERTH_PARAMETERS".into(), serde_json::Value::Object(req.parameters.clone()).to_string());
        let mut creq = ContainerRequest::new(kind, name, image);
        creq.cmd = cmd;
        creq.env = env;
        creq.memory = req.memory;
        creq.cpu = req.cpu;
        creq.runtime = req.runtime.clone();
        if !req.network {
            creq.network = crate::policy::NetworkRequest::None;
        }
        Ok((creq, timeout))
    }

    /// The container spec a request runs as, under a fresh run id and name:
    /// admitted by policy and labelled, nothing created.
    pub(super) fn admit(&self, req: &RunRequest) -> Result<Admitted, RunError> {
        let instance = self.instance()?;
        let hex = self.ids.next_hex();
        let id = RunId(format!("run_{hex}"));
        let name = format!("berth-run-{hex}");
        let (creq, timeout) = self.prepare(req, &name)?;
        let mut spec = self.policy.admit(creq)?;
        let runtime = self.backends.route(&spec).map_err(|e| RunError::BadRequest(format!("runtime: {e}")))?.runtime();
        spec.runtime = Some(runtime.to_owned());
        spec.labels.insert(labels::OBJECT.into(), id.0.clone());
        spec.labels.insert(labels::TENANT.into(), req.tenant.clone());
        spec.labels.insert(labels::INSTANCE.into(), instance);
        if let Some(session) = &req.session {
            spec.labels.insert(labels::SESSION.into(), session.clone());
        }
        Ok(Admitted { id, name, spec, timeout })
    }
}
