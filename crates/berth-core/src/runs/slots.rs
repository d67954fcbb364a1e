//! Concurrency slots: how many runs may be in flight at once, over all
//! tenants and per tenant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

use super::RunError;

/// The bounds on runs in flight: one over all tenants, one per tenant.
pub(super) struct Slots {
    /// Runs in flight at once, over all tenants.
    global: Semaphore,
    /// Runs in flight at once per tenant.
    per_tenant: usize,
    tenants: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A run's place among the runs in flight, held until it is dropped.
pub(super) struct Slot<'a> {
    _tenant: OwnedSemaphorePermit,
    _global: SemaphorePermit<'a>,
}

impl Slots {
    /// At most `max_concurrent` runs at once, and as many per tenant.
    pub fn new(max_concurrent: usize) -> Self {
        Slots {
            global: Semaphore::new(max_concurrent.max(1)),
            per_tenant: max_concurrent.max(1),
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// Bounds the runs one tenant may have in flight.
    pub fn set_per_tenant(&mut self, limit: usize) {
        self.per_tenant = limit.max(1);
    }

    fn tenant(&self, tenant: &str) -> Arc<Semaphore> {
        let mut slots = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(tenant.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant))).clone()
    }

    /// Waits for a slot of `tenant`'s and then a global one: a tenant's own
    /// bound first, so one tenant's queue never holds global slots.
    pub async fn acquire(&self, tenant: &str) -> Result<Slot<'_>, RunError> {
        let closed = |_| RunError::ShuttingDown;
        let tenant = self.tenant(tenant).acquire_owned().await.map_err(closed)?;
        let global = self.global.acquire().await.map_err(closed)?;
        Ok(Slot { _tenant: tenant, _global: global })
    }
}
