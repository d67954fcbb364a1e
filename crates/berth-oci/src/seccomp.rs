//! The seccomp filter every bundle carries: the engine's default profile
//! as dockerd compiles it for a berth container, kept in
//! `seccomp/default.json`.
//!
//! dockerd compiles its default profile per container: rules are kept or
//! dropped by the architecture (amd64 here), the kernel (one rule wants
//! 4.8 or later) and the container's bounding capabilities. berth's policy
//! drops every capability and adds back only from an allow-list that
//! shares none of the capabilities the profile looks at ([`GATED`]), so
//! every berth container gets the same compiled filter. That filter is
//! recorded from the daemon (the record mode of
//! `tests/real_engine/oci_runc.rs`, `BERTH_RECORD_SECCOMP=1`), never
//! written by hand, and the same test checks it equal to what dockerd
//! makes. A spec with a gated capability is refused rather than given a
//! filter the engine would not give it.

use crate::runtime_spec::Seccomp;

/// The recorded filter, as JSON.
pub const RECORDED: &str = include_str!("../seccomp/default.json");

/// Where the record mode writes [`RECORDED`], from the crate's root.
pub const RECORDED_PATH: &str = "seccomp/default.json";

/// The capabilities whose presence in the bounding set changes the
/// engine's compiled profile (its `includes`/`excludes` by capability).
pub const GATED: &[&str] = &[
    "CAP_DAC_READ_SEARCH",
    "CAP_SYSLOG",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_CHROOT",
    "CAP_SYS_MODULE",
    "CAP_SYS_NICE",
    "CAP_SYS_PACCT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
];

/// The filter for a container whose bounding set is `bounding`, or the
/// first capability that the recorded filter does not cover.
pub fn filter_for(bounding: &[String]) -> Result<Seccomp, String> {
    if let Some(cap) = bounding.iter().find(|c| GATED.contains(&c.as_str())) {
        return Err(cap.clone());
    }
    Ok(recorded())
}

/// The recorded filter. It is part of the build, and a unit test parses
/// it: a file that does not parse is a broken build, not a runtime error.
pub fn recorded() -> Seccomp {
    serde_json::from_str(RECORDED).expect("seccomp/default.json is the runtime spec's LinuxSeccomp")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_filter_parses_and_denies_by_default_with_rules_for_amd64() {
        let f = recorded();
        assert_eq!(f.default_action, "SCMP_ACT_ERRNO");
        assert!(f.architectures.iter().any(|a| a == "SCMP_ARCH_X86_64"), "{:?}", f.architectures);
        let allowed: Vec<&str> = f
            .syscalls
            .iter()
            .filter(|s| s.action == "SCMP_ACT_ALLOW")
            .flat_map(|s| s.names.iter().map(String::as_str))
            .collect();
        for common in ["read", "write", "execve", "clone", "exit_group"] {
            assert!(allowed.contains(&common), "{common} is allowed");
        }
        for denied in ["mount", "reboot", "init_module", "kexec_load"] {
            assert!(!allowed.contains(&denied), "{denied} is not allowed without its capability");
        }
    }

    #[test]
    fn a_gated_capability_is_refused_and_the_allow_list_is_not() {
        assert_eq!(filter_for(&["CAP_SYS_PTRACE".into()]), Err("CAP_SYS_PTRACE".into()));
        let allowed = ["CAP_NET_BIND_SERVICE", "CAP_CHOWN", "CAP_SETUID", "CAP_SETGID"].map(String::from);
        assert_eq!(filter_for(&allowed), Ok(recorded()));
    }

    #[test]
    fn the_filter_written_back_is_the_recorded_json() {
        let again: serde_json::Value = serde_json::to_value(recorded()).unwrap();
        assert_eq!(again, serde_json::from_str::<serde_json::Value>(RECORDED).unwrap());
    }
}
