//! The console's passes: what a browser holds, in an HttpOnly cookie, in
//! place of a bearer token, since a browser's `EventSource` cannot send an
//! `Authorization` header.
//!
//! A pass is an opaque random key the server maps to a tenant until it
//! expires; the token itself never reaches the browser's storage. The table
//! is bounded: when it is full the pass nearest its expiry makes room. It is
//! sans IO: the caller brings the key and the time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a pass is good for after its login.
pub const PASS_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// How many passes are held at once.
pub const MAX_PASSES: usize = 1024;

/// How many passes one tenant holds at once: its logins past these end
/// its own oldest, never another tenant's.
pub const MAX_PASSES_PER_TENANT: usize = 16;

/// The name of the cookie that carries a pass.
pub const COOKIE: &str = "berth_console";

#[derive(Debug, Clone)]
struct Pass {
    tenant: String,
    expires: Instant,
}

/// The passes handed out by logins, by key.
#[derive(Debug, Default)]
pub struct Passes {
    by_key: HashMap<String, Pass>,
}

impl Passes {
    /// Gives `key` to `tenant` until `now + PASS_LIFETIME`, dropping expired
    /// passes first; a tenant at its own bound loses its pass nearest its
    /// end, and a full table the pass nearest its end.
    pub fn issue(&mut self, key: String, tenant: String, now: Instant) {
        self.by_key.retain(|_, p| p.expires > now);
        let own = self.by_key.values().filter(|p| p.tenant == tenant).count();
        if own >= MAX_PASSES_PER_TENANT {
            self.drop_nearest(|p| p.tenant == tenant);
        } else if self.by_key.len() >= MAX_PASSES {
            self.drop_nearest(|_| true);
        }
        self.by_key.insert(key, Pass { tenant, expires: now + PASS_LIFETIME });
    }

    /// Drops the pass nearest its end among those `among` picks.
    fn drop_nearest(&mut self, among: impl Fn(&Pass) -> bool) {
        let nearest =
            self.by_key.iter().filter(|(_, p)| among(p)).min_by_key(|(_, p)| p.expires).map(|(k, _)| k.clone());
        if let Some(k) = nearest {
            self.by_key.remove(&k);
        }
    }

    /// The tenant `key` stands for, if it is held and has not expired.
    pub fn tenant(&mut self, key: &str, now: Instant) -> Option<String> {
        match self.by_key.get(key) {
            Some(p) if p.expires > now => Some(p.tenant.clone()),
            Some(_) => {
                self.by_key.remove(key);
                None
            }
            None => None,
        }
    }

    /// Ends a pass (a logout); an unknown key is no error.
    pub fn revoke(&mut self, key: &str) {
        self.by_key.remove(key);
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_stands_for_its_tenant_until_it_expires() {
        let t0 = Instant::now();
        let mut passes = Passes::default();
        passes.issue("k".into(), "acme".into(), t0);
        assert_eq!(passes.tenant("k", t0 + PASS_LIFETIME - Duration::from_secs(1)).as_deref(), Some("acme"));
        assert_eq!(passes.tenant("k", t0 + PASS_LIFETIME), None);
        assert!(passes.is_empty(), "an expired pass is dropped when it is read");
    }

    #[test]
    fn an_unknown_or_revoked_key_stands_for_no_one() {
        let t0 = Instant::now();
        let mut passes = Passes::default();
        passes.issue("k".into(), "acme".into(), t0);
        assert_eq!(passes.tenant("other", t0), None);
        passes.revoke("k");
        passes.revoke("never issued");
        assert_eq!(passes.tenant("k", t0), None);
    }

    #[test]
    fn a_tenants_logins_past_its_bound_end_its_own_oldest_pass_only() {
        let t0 = Instant::now();
        let mut passes = Passes::default();
        passes.issue("other".into(), "beta".into(), t0);
        for i in 0..=MAX_PASSES_PER_TENANT {
            passes.issue(format!("k{i}"), "acme".into(), t0 + Duration::from_millis(1 + i as u64));
        }
        let later = t0 + Duration::from_secs(1);
        assert_eq!(passes.len(), MAX_PASSES_PER_TENANT + 1);
        assert_eq!(passes.tenant("k0", later), None, "acme's oldest made room");
        assert_eq!(passes.tenant("other", later).as_deref(), Some("beta"), "beta's pass stays");
    }

    #[test]
    fn a_full_table_drops_the_pass_nearest_its_end() {
        let t0 = Instant::now();
        let mut passes = Passes::default();
        for i in 0..MAX_PASSES {
            passes.issue(format!("k{i}"), format!("tenant{}", i % 100), t0 + Duration::from_millis(i as u64));
        }
        passes.issue("new".into(), "beta".into(), t0 + Duration::from_secs(1));
        assert_eq!(passes.len(), MAX_PASSES);
        assert_eq!(passes.tenant("k0", t0 + Duration::from_secs(1)), None, "the oldest made room");
        assert_eq!(passes.tenant("k1", t0 + Duration::from_secs(1)).as_deref(), Some("tenant1"));
        assert_eq!(passes.tenant("new", t0 + Duration::from_secs(1)).as_deref(), Some("beta"));
    }

    #[test]
    fn expired_passes_make_room_before_live_ones() {
        let t0 = Instant::now();
        let mut passes = Passes::default();
        passes.issue("old".into(), "acme".into(), t0);
        passes.issue("new".into(), "acme".into(), t0 + PASS_LIFETIME + Duration::from_secs(1));
        assert_eq!(passes.len(), 1);
    }
}
