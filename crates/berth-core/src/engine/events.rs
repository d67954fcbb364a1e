//! Events of an engine that keeps its own (the dry run, the fake engine):
//! every event is sent on one broadcast channel, and each follower reads
//! those its selector matches.

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::broadcast;

use super::{EngineError, Selector, WorkloadEvent};

/// The events on `receiver` whose attributes match `selector`, from now
/// on; a follower that fell behind is told how many it missed.
pub fn matching(
    receiver: broadcast::Receiver<WorkloadEvent>,
    selector: Selector,
) -> BoxStream<'static, Result<WorkloadEvent, EngineError>> {
    futures_util::stream::unfold(receiver, move |mut rx| {
        let selector = selector.clone();
        async move {
            loop {
                match rx.recv().await {
                    Ok(event) if selector.matches(&event.attributes) => return Some((Ok(event), rx)),
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        return Some((Err(EngineError::failed(format!("{n} events were dropped"))), rx))
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    })
    .boxed()
}
