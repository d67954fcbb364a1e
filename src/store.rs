//! The store: what the engine cannot keep. Embedded SQLite (WAL), with
//! numbered migrations; run records (kept after their containers are gone)
//! and an audit trail of every mutating action.
//!
//! Calls are short and synchronous; callers never hold the store across an
//! engine call.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::runs::{RunId, RunRecord};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("store: a record does not decode: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Schema changes, applied in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &["CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        session TEXT,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        record TEXT NOT NULL
     );
     CREATE INDEX runs_by_tenant ON runs (tenant, created_at);
     CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        tenant TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        outcome TEXT NOT NULL
     );"];

/// One line of the audit trail: who did what to what, when, and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: String,
    pub tenant: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
}

pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating and migrating) the store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Store::migrated(conn)
    }

    pub fn in_memory() -> Result<Store, StoreError> {
        Store::migrated(Connection::open_in_memory()?)
    }

    fn migrated(mut conn: Connection) -> Result<Store, StoreError> {
        let applied: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let tx = conn.transaction()?;
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
        let json: Option<String> = self
            .conn()
            .query_row("SELECT record FROM runs WHERE id = ?1 AND tenant = ?2", params![id.0, tenant], |r| r.get(0))
            .optional()?;
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

    pub fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO audit (at, tenant, action, target, outcome) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![entry.at, entry.tenant, entry.action, entry.target, entry.outcome],
        )?;
        Ok(())
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
