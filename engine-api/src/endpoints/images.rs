//! `/images/...`: inspect, list, pull, remove, load and import.

use futures_util::{Stream, StreamExt};

use crate::client::Call;
use crate::error::{Error, Result};
use crate::models::{ImageDeleted, ImageInspect, ImageProgress, ImageSummary};
use crate::query::{image_ref, Filters, Query};
use crate::stream::JsonStream;
use crate::transport::RequestBody;
use crate::Docker;

/// `DELETE /images/{name}` options.
#[derive(Debug, Clone, Copy, Default)]
pub struct RemoveImageOptions {
    pub force: bool,
    pub no_prune: bool,
}

/// Progress lines, with a line that reports a failure turned into
/// [`Error::Stream`] (the daemon answers `200` and fails inside the body).
fn progress(stream: JsonStream<ImageProgress>) -> impl Stream<Item = Result<ImageProgress>> + Send + 'static {
    stream.map(|item| {
        let line = item?;
        match line.failure() {
            Some((message, code)) => Err(Error::Stream { message, code }),
            None => Ok(line),
        }
    })
}

impl Docker {
    pub async fn inspect_image(&self, name: &str) -> Result<ImageInspect> {
        self.json(Call::get(format!("/images/{}/json", image_ref(name)))).await
    }

    pub async fn list_images(&self, all: bool, filters: &Filters) -> Result<Vec<ImageSummary>> {
        let mut q = Query::new();
        q.flag("all", all).filters(filters);
        self.json(Call::get("/images/json").query(q)).await
    }

    /// Pulls `image` (`name[:tag]` or `name@digest`), streaming progress;
    /// a name without a tag or digest is `name:latest`, as the CLI takes
    /// it (the daemon, given no tag, pulls every tag of the repository).
    /// Drain the stream to the end: the pull is done when it ends without error.
    pub async fn pull_image(&self, image: &str) -> Result<impl Stream<Item = Result<ImageProgress>> + Send + 'static> {
        let (name, tag) = pull_reference(image);
        let mut q = Query::new();
        q.push("fromImage", name).opt("tag", tag);
        let res = self.send(Call::post("/images/create").query(q)).await?;
        Ok(progress(JsonStream::new(res.body, "pull progress")))
    }

    pub async fn remove_image(&self, name: &str, options: RemoveImageOptions) -> Result<Vec<ImageDeleted>> {
        let mut q = Query::new();
        q.flag("force", options.force).flag("noprune", options.no_prune);
        self.json(Call::delete(format!("/images/{}", image_ref(name))).query(q)).await
    }

    /// Exports images as a `docker save` tar stream (the input of [`Docker::load_images`]).
    pub async fn export_image(&self, name: &str) -> Result<crate::transport::Body> {
        Ok(self.send(Call::get(format!("/images/{}/get", image_ref(name)))).await?.body)
    }

    /// Loads images from a `docker save` tar stream.
    pub async fn load_images(
        &self,
        tar: RequestBody,
    ) -> Result<impl Stream<Item = Result<ImageProgress>> + Send + 'static> {
        let res = self.send(Call::post("/images/load").body(tar, "application/x-tar")).await?;
        Ok(progress(JsonStream::new(res.body, "load progress")))
    }

    /// Creates an image from a root filesystem tar stream, tagged `reference` (`repo[:tag]`).
    pub async fn import_image(
        &self,
        tar: RequestBody,
        reference: &str,
    ) -> Result<impl Stream<Item = Result<ImageProgress>> + Send + 'static> {
        let (repo, tag) = split_tag(reference);
        let mut q = Query::new();
        q.push("fromSrc", "-").push("repo", repo).opt("tag", tag);
        let res = self.send(Call::post("/images/create").query(q).body(tar, "application/x-tar")).await?;
        Ok(progress(JsonStream::new(res.body, "import progress")))
    }
}

/// Splits `repo:tag`, minding a registry port (`host:5000/repo`) and digests.
pub fn split_tag(reference: &str) -> (&str, Option<&str>) {
    if reference.contains('@') {
        return (reference, None);
    }
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
        _ => (reference, None),
    }
}

/// What a pull asks for: the name, and the tag (`latest` when a name
/// has neither a tag nor a digest).
fn pull_reference(image: &str) -> (&str, Option<&str>) {
    let (name, tag) = split_tag(image);
    (name, tag.or((!image.contains('@')).then_some("latest")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_error_detail_line_inside_a_200_is_a_stream_error() {
        let lines: &'static [u8] = b"{\"status\":\"Pulling fs layer\",\"id\":\"a\"}\r\n\
            {\"errorDetail\":{\"message\":\"unexpected EOF\"},\"error\":\"unexpected EOF\"}\r\n";
        let body =
            crate::transport::Body::from_stream(futures_util::stream::iter([Ok(bytes::Bytes::from_static(lines))]));
        let items: Vec<_> = progress(JsonStream::new(body, "pull progress")).collect().await;
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].as_ref().unwrap().status.as_deref(), Some("Pulling fs layer"));
        assert!(matches!(&items[1], Err(Error::Stream { message, .. }) if message == "unexpected EOF"));
    }

    #[test]
    fn tags_are_split_without_mistaking_a_registry_port_for_one() {
        assert_eq!(split_tag("busybox:1.35"), ("busybox", Some("1.35")));
        assert_eq!(split_tag("127.0.0.1:5000/berth/busybox"), ("127.0.0.1:5000/berth/busybox", None));
        assert_eq!(split_tag("127.0.0.1:5000/berth/busybox:1.35"), ("127.0.0.1:5000/berth/busybox", Some("1.35")));
        assert_eq!(split_tag("img@sha256:abc"), ("img@sha256:abc", None));
    }

    #[test]
    fn a_pull_of_a_name_without_a_tag_asks_for_latest_not_every_tag() {
        assert_eq!(pull_reference("127.0.0.1:5000/berth/busybox"), ("127.0.0.1:5000/berth/busybox", Some("latest")));
        assert_eq!(pull_reference("busybox:1.35"), ("busybox", Some("1.35")));
        assert_eq!(pull_reference("img@sha256:abc"), ("img@sha256:abc", None));
    }
}
