//! Templates: what a sandbox of a name is (its image and defaults).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::units::{ByteSize, CpuLimit};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Template {
    pub image: String,
    /// `uid:gid`, never root.
    pub user: String,
    /// The user's home and the processes' default directory: a tmpfs of `disk`.
    pub home: String,
    pub env: BTreeMap<String, String>,
    pub memory: ByteSize,
    pub cpu: CpuLimit,
    /// The size of the home's tmpfs (the sandbox's writable space). A
    /// tmpfs is memory: what is written there counts toward `memory`, so a
    /// template's memory stays above its disk and tmp together.
    pub disk: ByteSize,
    /// The size of `/tmp`.
    pub tmp: ByteSize,
}

impl Template {
    /// The `base` template: bash, coreutils and python, user `user` (uid
    /// 1000) in `/home/user`, as provisioning builds it.
    pub fn base() -> Self {
        Template {
            image: "berth/base:1".into(),
            user: "1000:1000".into(),
            home: "/home/user".into(),
            env: BTreeMap::new(),
            memory: ByteSize::mib(1024),
            cpu: CpuLimit(1_000_000_000),
            disk: ByteSize::mib(512),
            tmp: ByteSize::mib(64),
        }
    }
}

impl Default for Template {
    fn default() -> Self {
        Template::base()
    }
}
