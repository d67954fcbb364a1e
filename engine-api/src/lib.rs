//! berth's own Docker Engine API client.
//!
//! This crate speaks the Engine API and nothing else: it knows containers,
//! images, networks, volumes and execs as the daemon does, and nothing of
//! agents, runs, relics or sessions (those are berth's). It has three layers:
//!
//! - [`transport`]: the seam where bytes leave and arrive. [`SocketTransport`]
//!   is HTTP/1.1 over a Unix socket or TCP with kept-alive connections; a
//!   recording or replaying transport can stand in for it.
//! - [`Docker`] ([`client`] and [`endpoints`]): version negotiation, one
//!   method per endpoint, status codes sorted into [`Error`], per-call timeouts.
//! - [`decode`]: sans-IO decoders for multiplexed output, raw TTY output and
//!   JSON lines, fed by the thin adapters in [`stream`].
//!
//! ```no_run
//! # async fn demo() -> engine_api::Result<()> {
//! let docker = engine_api::Docker::from_env()?;
//! docker.ping().await?;
//! println!("API {}", docker.api_version().await?);
//! # Ok(()) }
//! ```

pub mod client;
mod deadline;
pub mod decode;
pub mod endpoints;
pub mod error;
pub mod host;
pub mod models;
pub mod query;
pub mod stream;
pub mod tls;
pub mod transport;
pub mod version;

pub use client::Docker;
pub use decode::{Framing, Output, StreamKind};
pub use endpoints::containers::{
    ListOptions, LogsOptions, RemoveOptions, Started, Stopped, Tail, WaitCondition, Waiting,
};
pub use endpoints::images::RemoveImageOptions;
pub use endpoints::system::EventsOptions;
pub use endpoints::Attached;
pub use error::{DecodeError, Error, Result};
pub use host::Endpoint;
pub use query::Filters;
pub use transport::{SocketTransport, Transport};
pub use version::ApiVersion;
