//! The store's schema, as numbered migrations. A migration is never edited
//! once it has shipped: a change is a new entry at the end.

/// Schema changes, applied in order; `PRAGMA user_version` counts those applied.
pub(super) const MIGRATIONS: &[&str] = &[
    "CREATE TABLE runs (
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
     );",
    "CREATE TABLE ports (
        port INTEGER PRIMARY KEY,
        owner TEXT NOT NULL
     );
     CREATE TABLE objects (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        tenant TEXT NOT NULL,
        session TEXT,
        record TEXT NOT NULL
     );
     CREATE INDEX objects_by_tenant ON objects (tenant, kind);
     CREATE TABLE renewals (
        id TEXT PRIMARY KEY,
        expires_at TEXT NOT NULL
     );",
    "CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
     );",
    // Records that name a container say where it runs; those made before
    // placements ran on the one local engine.
    "UPDATE runs SET record = json_set(record, '$.placement', 'local')
        WHERE json_extract(record, '$.placement') IS NULL;
     UPDATE objects SET record = json_set(record, '$.placement', 'local')
        WHERE kind IN ('agent', 'relic') AND json_extract(record, '$.placement') IS NULL;",
    // Ids a client chooses are its tenant's: an object is (kind, tenant,
    // id), and renewals and published ports belong to a tenant's object.
    // Rows made before carry the tenant their object has.
    "CREATE TABLE objects_v2 (
        id TEXT NOT NULL,
        kind TEXT NOT NULL,
        tenant TEXT NOT NULL,
        session TEXT,
        record TEXT NOT NULL,
        PRIMARY KEY (kind, tenant, id)
     );
     INSERT INTO objects_v2 (id, kind, tenant, session, record)
        SELECT id, kind, tenant, session, record FROM objects;
     CREATE TABLE renewals_v2 (
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        PRIMARY KEY (tenant, id)
     );
     INSERT INTO renewals_v2 (tenant, id, expires_at)
        SELECT COALESCE((SELECT o.tenant FROM objects o WHERE o.id = r.id), ''), r.id, r.expires_at
        FROM renewals r;
     UPDATE ports SET owner = (SELECT o.tenant || '/' || o.id FROM objects o WHERE o.id = ports.owner AND o.kind = 'agent')
        WHERE EXISTS (SELECT 1 FROM objects o WHERE o.id = ports.owner AND o.kind = 'agent');
     DROP TABLE objects;
     ALTER TABLE objects_v2 RENAME TO objects;
     CREATE INDEX objects_by_tenant ON objects (tenant, kind);
     DROP TABLE renewals;
     ALTER TABLE renewals_v2 RENAME TO renewals;",
];
