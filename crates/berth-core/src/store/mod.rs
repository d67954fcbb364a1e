//! The store: what the engine cannot keep. Embedded SQLite (WAL), with
//! numbered migrations; run records (kept after their containers are gone)
//! and an audit trail of every mutating action.
//!
//! Calls are short and synchronous; callers never hold the store across an
//! engine call.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::model::run::{RunId, RunRecord};

mod migrations;
use self::migrations::MIGRATIONS;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("store: a record does not decode: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Who holds published ports: a tenant's object.
pub fn port_owner(tenant: &str, id: &str) -> String {
    format!("{tenant}/{id}")
}

/// One line of the audit trail: who did what to what, when, and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: String,
    pub tenant: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
}

/// What [`Store::prune`] forgot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    pub runs: usize,
    pub sandboxes: usize,
    pub audit: usize,
}

/// What [`Store::insert_object`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Done,
    /// An object of the kind and tenant has the id.
    IdTaken,
    /// An object of the kind has the value that was to be unique.
    ValueTaken,
}

pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating and migrating) the store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Store::migrated(conn)
    }

    pub fn in_memory() -> Result<Store, StoreError> {
        Store::migrated(Connection::open_in_memory()?)
    }

    fn migrated(mut conn: Connection) -> Result<Store, StoreError> {
        // The version is read under the write lock, so processes opening a
        // new store at once apply each migration exactly once.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let applied: usize = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i + 1)?;
        }
        tx.commit()?;
        Ok(Store { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Inserts or replaces a run record.
    pub fn put_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        let record = serde_json::to_string(run)?;
        self.conn().execute(
            "INSERT INTO runs (id, tenant, session, status, created_at, record) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, record = excluded.record",
            params![run.id.0, run.tenant, run.session, run.status.as_str(), run.created_at.to_rfc3339(), record],
        )?;
        Ok(())
    }

    /// A run of `tenant`; another tenant's run is as absent as a missing one.
    pub fn get_run(&self, tenant: &str, id: &RunId) -> Result<Option<RunRecord>, StoreError> {
        // The hot read of the API: its statement is prepared once per connection.
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT record FROM runs WHERE id = ?1 AND tenant = ?2")?;
        let json: Option<String> = stmt.query_row(params![id.0, tenant], |r| r.get(0)).optional()?;
        Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
    }

    /// Runs of `tenant`, newest first, at most `limit`.
    pub fn list_runs(&self, tenant: &str, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT record FROM runs WHERE tenant = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2")?;
        let rows = stmt.query_map(params![tenant, limit as i64], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(serde_json::from_str(&row?)?);
        }
        Ok(out)
    }

    /// Runs not in a terminal status, of every tenant (for restart recovery).
    pub fn unfinished_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT record FROM runs WHERE status IN ('pending', 'running')")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(serde_json::from_str(&row?)?);
        }
        Ok(out)
    }

    /// Takes `count` free ports of `[first, last]` for `owner`, lowest first,
    /// all or none. A port taken is never given again until released.
    pub fn allocate_ports(&self, owner: &str, count: usize, first: u16, last: u16) -> Result<Vec<u16>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let taken: std::collections::BTreeSet<u16> = {
            let mut stmt = tx.prepare("SELECT port FROM ports WHERE port BETWEEN ?1 AND ?2")?;
            let rows = stmt.query_map(params![first, last], |r| r.get::<_, u16>(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let free: Vec<u16> = (first..=last).filter(|p| !taken.contains(p)).take(count).collect();
        if free.len() < count {
            return Ok(Vec::new());
        }
        for port in &free {
            tx.execute("INSERT INTO ports (port, owner) VALUES (?1, ?2)", params![port, owner])?;
        }
        tx.commit()?;
        Ok(free)
    }

    /// Frees every port of `owner`.
    pub fn release_ports(&self, owner: &str) -> Result<usize, StoreError> {
        Ok(self.conn().execute("DELETE FROM ports WHERE owner = ?1", params![owner])?)
    }

    /// Stores any record (agents, sessions, relics) as JSON under its id.
    pub fn put_object<T: Serialize>(
        &self,
        id: &str,
        kind: &str,
        tenant: &str,
        session: Option<&str>,
        record: &T,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(record)?;
        self.conn().execute(
            "INSERT INTO objects (id, kind, tenant, session, record) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (kind, tenant, id) DO UPDATE SET record = excluded.record, session = excluded.session",
            params![id, kind, tenant, session, json],
        )?;
        Ok(())
    }

    /// Stores a new record under `id`, unless the tenant has an object of
    /// `kind` of that id already, or, with `unique` as a JSON path and a
    /// value, an object of `kind` of any tenant has that value there; the
    /// check and the insert are one write.
    pub fn insert_object<T: Serialize>(
        &self,
        id: &str,
        kind: &str,
        tenant: &str,
        session: Option<&str>,
        record: &T,
        unique: Option<(&str, &str)>,
    ) -> Result<Inserted, StoreError> {
        let json = serde_json::to_string(record)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let id_taken: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM objects WHERE kind = ?1 AND tenant = ?2 AND id = ?3)",
            params![kind, tenant, id],
            |r| r.get(0),
        )?;
        if id_taken {
            return Ok(Inserted::IdTaken);
        }
        if let Some((path, value)) = unique {
            let taken: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM objects WHERE kind = ?1 AND json_extract(record, ?2) = ?3)",
                params![kind, path, value],
                |r| r.get(0),
            )?;
            if taken {
                return Ok(Inserted::ValueTaken);
            }
        }
        tx.execute(
            "INSERT INTO objects (id, kind, tenant, session, record) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, kind, tenant, session, json],
        )?;
        tx.commit()?;
        Ok(Inserted::Done)
    }

    /// An object of `kind` by an id unique over all tenants (one berth
    /// made), with its tenant.
    /// The tenant whose object of `kind` is `id`, if any.
    pub fn owner(&self, kind: &str, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT tenant FROM objects WHERE id = ?1 AND kind = ?2 LIMIT 1", params![id, kind], |r| {
                r.get(0)
            })
            .optional()?)
    }

    pub fn find_object<T: for<'de> Deserialize<'de>>(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<Option<(String, T)>, StoreError> {
        let row: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT tenant, record FROM objects WHERE id = ?1 AND kind = ?2 LIMIT 1",
                params![id, kind],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.map(|(t, j)| serde_json::from_str(&j).map(|r| (t, r))).transpose()?)
    }

    /// A record of `kind` and `tenant`; another tenant's is as absent as a missing one.
    pub fn get_object<T: for<'de> Deserialize<'de>>(
        &self,
        kind: &str,
        tenant: &str,
        id: &str,
    ) -> Result<Option<T>, StoreError> {
        let json: Option<String> = self
            .conn()
            .query_row(
                "SELECT record FROM objects WHERE id = ?1 AND kind = ?2 AND tenant = ?3",
                params![id, kind, tenant],
                |r| r.get(0),
            )
            .optional()?;
        Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
    }

    /// Records of `kind` of `tenant` (and of `session`, when given), in id order.
    pub fn list_objects<T: for<'de> Deserialize<'de>>(
        &self,
        kind: &str,
        tenant: &str,
        session: Option<&str>,
    ) -> Result<Vec<T>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT record FROM objects WHERE kind = ?1 AND tenant = ?2 AND (?3 IS NULL OR session = ?3) ORDER BY id",
        )?;
        let rows = stmt.query_map(params![kind, tenant, session], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(serde_json::from_str(&row?)?);
        }
        Ok(out)
    }

    /// How many objects of `kind`, over every tenant, have each value of
    /// their record's `field` (a top-level field: `state`, `status`).
    pub fn count_objects_by(&self, kind: &str, field: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT COALESCE(json_extract(record, ?2), ''), COUNT(*) FROM objects WHERE kind = ?1 GROUP BY 1 ORDER BY 1",
        )?;
        let rows = stmt.query_map(params![kind, format!("$.{field}")], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn delete_object(&self, kind: &str, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .execute("DELETE FROM objects WHERE id = ?1 AND kind = ?2 AND tenant = ?3", params![id, kind, tenant])?;
        Ok(n > 0)
    }

    /// This store's instance id, made on first use: berth labels its run
    /// containers with it, so recovery touches only its own.
    pub fn instance_id(&self, fresh: impl FnOnce() -> String) -> Result<String, StoreError> {
        let conn = self.conn();
        let known: Option<String> =
            conn.query_row("SELECT value FROM meta WHERE key = 'instance'", [], |r| r.get(0)).optional()?;
        if let Some(id) = known {
            return Ok(id);
        }
        let fresh = fresh();
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('instance', ?1)", params![fresh])?;
        Ok(conn.query_row("SELECT value FROM meta WHERE key = 'instance'", [], |r| r.get(0))?)
    }

    /// Records a new expiry for a tenant's object (what a workload was made
    /// with cannot change while it runs).
    pub fn renew(&self, tenant: &str, id: &str, expires_at: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO renewals (tenant, id, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (tenant, id) DO UPDATE SET expires_at = excluded.expires_at",
            params![tenant, id, expires_at],
        )?;
        Ok(())
    }

    /// The latest renewal of a tenant's object, if it was ever renewed.
    pub fn renewal(&self, tenant: &str, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT expires_at FROM renewals WHERE tenant = ?1 AND id = ?2", params![tenant, id], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Writes an audit line now; a failure to write is logged, never fatal to
    /// the action it describes.
    pub fn note(&self, at: chrono::DateTime<chrono::Utc>, tenant: &str, action: &str, target: &str, outcome: &str) {
        let entry = AuditEntry {
            at: at.to_rfc3339(),
            tenant: tenant.into(),
            action: action.into(),
            target: target.into(),
            outcome: outcome.into(),
        };
        if let Err(e) = self.audit(&entry) {
            tracing::warn!(%e, "audit entry not written");
        }
    }

    pub fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO audit (at, tenant, action, target, outcome) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![entry.at, entry.tenant, entry.action, entry.target, entry.outcome],
        )?;
        Ok(())
    }

    /// Forgets what has grown past its retention: finished runs created
    /// before `runs_before`, and audit entries beyond the newest `audit_keep`.
    /// Returns how many runs and entries went.
    /// Forgets finished runs made before `runs_before`, sandboxes that
    /// ended before it, and all but the newest `audit_keep` audit entries.
    pub fn prune(&self, runs_before: DateTime<Utc>, audit_keep: usize) -> Result<Pruned, StoreError> {
        let conn = self.conn();
        let runs = conn.execute(
            "DELETE FROM runs WHERE status NOT IN ('pending', 'running') AND created_at < ?1",
            params![runs_before.to_rfc3339()],
        )?;
        let sandboxes = conn.execute(
            "DELETE FROM objects WHERE kind = 'sandbox' AND json_extract(record, '$.state') = 'ended'
               AND julianday(json_extract(record, '$.ended_at')) < julianday(?1)",
            params![runs_before.to_rfc3339()],
        )?;
        let audit = conn.execute(
            "DELETE FROM audit WHERE seq <= (SELECT MAX(seq) FROM audit) - ?1",
            params![audit_keep.min(i64::MAX as usize) as i64],
        )?;
        Ok(Pruned { runs, sandboxes, audit })
    }

    /// The newest `limit` audit entries of `tenant`, newest first.
    pub fn audit_trail(&self, tenant: &str, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT at, tenant, action, target, outcome FROM audit WHERE tenant = ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![tenant, limit as i64], |r| {
            Ok(AuditEntry {
                at: r.get(0)?,
                tenant: r.get(1)?,
                action: r.get(2)?,
                target: r.get(3)?,
                outcome: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_stored_before_placements_read_as_local_after_the_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.db");
        {
            // A store as the code before placements left it.
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..3] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 3).unwrap();
            let run = r#"{"id":"run_old","tenant":"t1","session":null,"name":null,"image":"busybox:1.35",
                "status":"succeeded","exit_code":0,"stdout":"","stderr":"","stdout_truncated":false,
                "stderr_truncated":false,"result":null,"usage":{"wall_ms":1,"cpu_ms":null,"peak_memory_bytes":null},
                "container_id":"abc","container_name":"berth-run-old","container_removed":true,"error":null,
                "path":"cold","created_at":"2026-11-01T00:00:00Z","finished_at":"2026-11-01T00:00:01Z"}"#;
            conn.execute(
                "INSERT INTO runs (id, tenant, session, status, created_at, record) VALUES (?1, 't1', NULL, 'succeeded', ?2, ?3)",
                rusqlite::params!["run_old", "2026-11-01T00:00:00Z", run],
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let run = store.get_run("t1", &RunId("run_old".into())).unwrap().expect("the old run is still there");
        assert_eq!(run.placement, crate::engine::Placement::Local);
        assert_eq!(run.handle(), Some(crate::engine::Handle::local("abc")));
        let raw: String =
            store.conn().query_row("SELECT record FROM runs WHERE id = 'run_old'", [], |r| r.get(0)).unwrap();
        assert!(raw.contains(r#""placement":"local""#), "the migration wrote it: {raw}");
    }

    #[test]
    fn pruning_forgets_old_finished_runs_old_ended_sandboxes_and_the_oldest_audit_entries_only() {
        use crate::model::run::{RunId, RunRecord, RunStatus};
        let store = Store::in_memory().unwrap();
        let old: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let new: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
        let run = |id: &str, status: RunStatus, at: DateTime<Utc>| {
            let mut r: RunRecord = serde_json::from_value(serde_json::json!({
                "id": id, "tenant": "t", "session": null, "name": null, "image": "i", "status": "pending",
                "exit_code": null, "stdout": "", "stderr": "", "stdout_truncated": false, "stderr_truncated": false,
                "result": null, "usage": {"wall_ms": 0, "cpu_ms": null, "peak_memory_bytes": null},
                "container_id": null, "container_name": "c", "container_removed": true, "error": null,
                "path": "cold", "created_at": at, "finished_at": null
            }))
            .unwrap();
            r.status = status;
            r
        };
        store.put_run(&run("run_old_done", RunStatus::Succeeded, old)).unwrap();
        store.put_run(&run("run_old_running", RunStatus::Running, old)).unwrap();
        store.put_run(&run("run_new_done", RunStatus::Failed, new)).unwrap();
        for i in 0..5 {
            store.note(new, "t", "x", &format!("{i}"), "ok");
        }
        let cutoff: DateTime<Utc> = "2026-02-01T00:00:00Z".parse().unwrap();
        let ended = |id: &str, at: DateTime<Utc>| serde_json::json!({ "id": id, "state": "ended", "ended_at": at });
        // As chrono writes it: fractional seconds and a Z.
        let old_ended = old + chrono::Duration::nanoseconds(123_456_789);
        store.put_object("sbx_old", "sandbox", "t", None, &ended("sbx_old", old_ended)).unwrap();
        store.put_object("sbx_new", "sandbox", "t", None, &ended("sbx_new", new)).unwrap();
        let live = serde_json::json!({ "id": "sbx_live", "state": "running", "ended_at": null });
        store.put_object("sbx_live", "sandbox", "t", None, &live).unwrap();
        assert_eq!(store.prune(cutoff, 3).unwrap(), Pruned { runs: 1, sandboxes: 1, audit: 2 });
        let kept: Vec<serde_json::Value> = store.list_objects("sandbox", "t", None).unwrap();
        let mut kept: Vec<&str> = kept.iter().filter_map(|v| v["id"].as_str()).collect();
        kept.sort();
        assert_eq!(kept, vec!["sbx_live", "sbx_new"]);
        let left: Vec<String> = store.list_runs("t", 10).unwrap().into_iter().map(|r| r.id.0).collect();
        assert_eq!(left, vec!["run_new_done", "run_old_running"]);
        let trail: Vec<String> = store.audit_trail("t", 10).unwrap().into_iter().map(|e| e.target).collect();
        assert_eq!(trail, vec!["4", "3", "2"]);
        assert!(store.get_run("t", &RunId("run_old_done".into())).unwrap().is_none());
    }

    #[test]
    fn ports_are_never_given_twice_and_come_back_when_released() {
        let store = Store::in_memory().unwrap();
        assert_eq!(store.allocate_ports("a", 2, 9000, 9003).unwrap(), vec![9000, 9001]);
        assert_eq!(store.allocate_ports("b", 1, 9000, 9003).unwrap(), vec![9002]);
        assert!(store.allocate_ports("c", 2, 9000, 9003).unwrap().is_empty(), "all or none");
        assert_eq!(store.release_ports("a").unwrap(), 2);
        assert_eq!(store.allocate_ports("c", 2, 9000, 9003).unwrap(), vec![9000, 9001]);
    }

    #[test]
    fn a_dry_run_record_round_trips_with_its_plan_and_is_finished() {
        use crate::model::run::{RunStatus, RunUsage};
        let store = Store::in_memory().unwrap();
        let run = RunRecord {
            runtime: None,
            id: RunId("run_1".into()),
            tenant: "t1".into(),
            session: None,
            name: None,
            image: "busybox:1.35".into(),
            kind: None,
            status: RunStatus::DryRun,
            exit_code: Some(0),
            stdout: String::new(),
            stderr: String::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            result: None,
            usage: RunUsage::default(),
            container_id: None,
            placement: Default::default(),
            container_name: "berth-run-1".into(),
            container_removed: true,
            error: None,
            path: "cold".into(),
            plan: Some(serde_json::json!({"config": {"ociVersion": "1.0.2"}})),
            created_at: chrono::Utc::now(),
            finished_at: Some(chrono::Utc::now()),
        };
        store.put_run(&run).unwrap();
        assert_eq!(store.get_run("t1", &run.id).unwrap().unwrap(), run);
        let status: String =
            store.conn().query_row("SELECT status FROM runs WHERE id = 'run_1'", [], |r| r.get(0)).unwrap();
        assert_eq!(status, "dry_run");
        assert!(store.unfinished_runs().unwrap().is_empty(), "dry_run is an end");
        // A record written before plans existed still decodes.
        let mut old = serde_json::to_value(&run).unwrap();
        old.as_object_mut().unwrap().remove("plan");
        assert_eq!(serde_json::from_value::<RunRecord>(old).unwrap().plan, None);
    }

    #[test]
    fn a_new_object_is_refused_an_id_its_tenant_holds_and_a_value_its_kind_has() {
        let store = Store::in_memory().unwrap();
        let rec = |name: &str| serde_json::json!({ "container_name": name });
        let unique = |name| Some(("$.container_name", name));
        assert_eq!(store.insert_object("a1", "agent", "t1", None, &rec("n1"), unique("n1")).unwrap(), Inserted::Done);
        assert_eq!(
            store.insert_object("a1", "agent", "t1", None, &rec("n2"), unique("n2")).unwrap(),
            Inserted::IdTaken
        );
        assert_eq!(
            store.insert_object("a1", "agent", "t2", None, &rec("n3"), unique("n3")).unwrap(),
            Inserted::Done,
            "another tenant's id is its own"
        );
        assert_eq!(
            store.insert_object("a2", "agent", "t2", None, &rec("n1"), unique("n1")).unwrap(),
            Inserted::ValueTaken
        );
        assert_eq!(store.insert_object("r1", "relic", "t2", None, &rec("n1"), None).unwrap(), Inserted::Done);
        let kept: Option<serde_json::Value> = store.get_object("agent", "t1", "a1").unwrap();
        assert_eq!(kept, Some(rec("n1")), "the first tenant's record is untouched");
        let theirs: Option<serde_json::Value> = store.get_object("agent", "t2", "a1").unwrap();
        assert_eq!(theirs, Some(rec("n3")), "the second tenant's record is its own");
    }

    #[test]
    fn records_survive_reopening_the_file_and_stay_within_their_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.db");
        {
            let store = Store::open(&path).unwrap();
            store.put_object("s1", "session", "t1", None, &serde_json::json!({"id": "s1"})).unwrap();
            store.allocate_ports("agent-1", 1, 9000, 9500).unwrap();
        }
        let store = Store::open(&path).unwrap();
        let got: Option<serde_json::Value> = store.get_object("session", "t1", "s1").unwrap();
        assert_eq!(got, Some(serde_json::json!({"id": "s1"})));
        assert!(store.get_object::<serde_json::Value>("session", "t2", "s1").unwrap().is_none());
        assert_eq!(store.allocate_ports("agent-2", 1, 9000, 9500).unwrap(), vec![9001], "persisted allocation");
    }
}
