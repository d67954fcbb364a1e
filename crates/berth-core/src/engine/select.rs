//! Which workloads or networks a list means: a conjunction of label terms,
//! built from berth's own label names, so no caller spells `key=value`. A
//! backend turns a selector into its engine's filter (a cluster backend may
//! fan it out over its nodes); [`Selector::matches`] is the rule for
//! backends that filter themselves.

use std::collections::BTreeMap;

use crate::spec::{labels, Kind};

/// Workloads carrying every term: a label with a given value, or a label
/// with any value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    terms: Vec<(String, Option<String>)>,
}

impl Selector {
    /// Everything, unfiltered.
    pub fn all() -> Selector {
        Selector::default()
    }

    /// Everything berth manages.
    pub fn managed() -> Selector {
        Selector::all().has(labels::MANAGED)
    }

    /// Carrying the label `key`, whatever its value.
    pub fn has(mut self, key: &str) -> Selector {
        self.terms.push((key.to_owned(), None));
        self
    }

    /// Carrying the label `key` with `value`.
    pub fn label(mut self, key: &str, value: &str) -> Selector {
        self.terms.push((key.to_owned(), Some(value.to_owned())));
        self
    }

    pub fn kind(self, kind: Kind) -> Selector {
        self.label(labels::KIND, kind.as_str())
    }

    /// Of a kind named by its label word (`session-network`, `seed-network`).
    pub fn kind_word(self, kind: &str) -> Selector {
        self.label(labels::KIND, kind)
    }

    pub fn tenant(self, tenant: &str) -> Selector {
        self.label(labels::TENANT, tenant)
    }

    pub fn session(self, session: &str) -> Selector {
        self.label(labels::SESSION, session)
    }

    pub fn instance(self, instance: &str) -> Selector {
        self.label(labels::INSTANCE, instance)
    }

    /// The terms in the order they were given.
    pub fn terms(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.terms.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
    }

    /// The terms as the Docker Engine's label filters write them (`key` or
    /// `key=value`), in the order they were given.
    pub fn label_filters(&self) -> Vec<String> {
        self.terms()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => k.to_owned(),
            })
            .collect()
    }

    /// Whether `labels` carry every term.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.terms().all(|(k, v)| match v {
            Some(v) => labels.get(k).is_some_and(|have| have == v),
            None => labels.contains_key(k),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selector_matches_only_labels_carrying_every_term() {
        let sel = Selector::managed().tenant("t1").kind(Kind::Agent);
        let mut l = BTreeMap::from([
            (labels::MANAGED.to_owned(), "true".to_owned()),
            (labels::TENANT.to_owned(), "t1".to_owned()),
            (labels::KIND.to_owned(), "agent".to_owned()),
        ]);
        assert!(sel.matches(&l));
        l.insert(labels::TENANT.to_owned(), "t2".to_owned());
        assert!(!sel.matches(&l));
        assert!(Selector::all().matches(&BTreeMap::new()));
    }

    #[test]
    fn a_selector_writes_docker_label_filters_in_its_own_order() {
        let sel = Selector::all().kind(Kind::Agent).tenant("t1").has(labels::MANAGED);
        assert_eq!(sel.label_filters(), ["io.berth.kind=agent", "io.berth.tenant=t1", "io.berth.managed"]);
    }
}
