//! A child's environment and how its program is found through `PATH`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The `PATH` a child has when nothing else sets one.
pub const BASE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The helper's own settings (as `BERTH_SANDBOXD_BIN` in its tests), not the
/// sandbox's: a sandbox's own variables may have any other name.
const BERTH_PREFIX: &str = "BERTH_SANDBOXD_";

/// What every child starts from, before the sandbox's and the request's
/// variables.
#[derive(Debug, Clone)]
pub struct BaseEnvironment {
    vars: BTreeMap<String, String>,
}

impl BaseEnvironment {
    /// The base from the helper's own situation: its home and user, and the
    /// sandbox's variables berth set on the container (not berth's own).
    pub fn new(home: &Path, user: &str, own: impl IntoIterator<Item = (String, String)>) -> BaseEnvironment {
        let mut vars = BTreeMap::new();
        vars.insert("PATH".to_string(), BASE_PATH.to_string());
        vars.insert("HOME".to_string(), home.to_string_lossy().into_owned());
        vars.insert("USER".to_string(), user.to_string());
        vars.insert("LOGNAME".to_string(), user.to_string());
        for (name, value) in own {
            if !name.starts_with(BERTH_PREFIX) {
                vars.insert(name, value);
            }
        }
        BaseEnvironment { vars }
    }

    /// The base with `request`'s variables over it (the request's win).
    pub fn with(&self, request: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut vars = self.vars.clone();
        vars.extend(request.iter().map(|(k, v)| (k.clone(), v.clone())));
        vars
    }
}

/// The file `program` names: itself when it has a slash (relative to
/// `cwd`), else the first executable file of that name in `path`.
pub fn find_program(program: &str, path: &str, cwd: &Path) -> Option<PathBuf> {
    if program.is_empty() {
        return None;
    }
    if program.contains('/') {
        let candidate = cwd.join(program);
        return is_executable(&candidate).then_some(candidate);
    }
    path.split(':')
        .map(|dir| if dir.is_empty() { cwd.to_path_buf() } else { cwd.join(dir) })
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> BaseEnvironment {
        let own = [
            ("LANG".to_string(), "C.UTF-8".to_string()),
            ("BERTH_SANDBOXD_TOKEN".to_string(), "secret".to_string()),
            ("BERTH_E2B_GLOBAL".to_string(), "kept".to_string()),
            ("HOME".to_string(), "/home/user".to_string()),
        ];
        BaseEnvironment::new(Path::new("/home/user"), "user", own)
    }

    #[test]
    fn the_sandbox_variables_are_kept_and_berths_own_are_not() {
        let vars = base().with(&BTreeMap::new());
        assert_eq!(vars["LANG"], "C.UTF-8");
        assert_eq!(vars["PATH"], BASE_PATH);
        assert_eq!(vars["LOGNAME"], "user");
        assert!(!vars.contains_key("BERTH_SANDBOXD_TOKEN"));
        assert_eq!(vars["BERTH_E2B_GLOBAL"], "kept");
    }

    #[test]
    fn the_request_variables_win() {
        let request = BTreeMap::from([("LANG".to_string(), "fr_FR".to_string())]);
        assert_eq!(base().with(&request)["LANG"], "fr_FR");
    }

    #[test]
    fn a_program_is_found_through_path_and_a_missing_one_is_not() {
        let found = find_program("sh", BASE_PATH, Path::new("/")).expect("sh is on this host");
        assert!(found.ends_with("sh"));
        assert_eq!(find_program("no-such-program-anywhere", BASE_PATH, Path::new("/")), None);
        assert_eq!(find_program("", BASE_PATH, Path::new("/")), None);
    }

    #[test]
    fn a_program_with_a_slash_is_taken_relative_to_the_cwd() {
        assert!(
            find_program("bin/sh", "", Path::new("/")).is_some()
                || find_program("usr/bin/sh", "", Path::new("/")).is_some()
        );
    }
}
