//! The hermetic tier: no daemon is needed. Orchestration and every HTTP
//! route that reaches the engine over recorded daemon exchanges (suites
//! `berth` and `http` of `fixtures/`), every flow on the OCI dry run, and
//! the layering rules of ARCHITECTURE.md.

mod dry_run;
mod http;
mod layers;
mod orchestration;
