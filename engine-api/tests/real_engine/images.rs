use bytes::Bytes;
use engine_api::transport::RequestBody;
use engine_api::{Error, Filters, RemoveImageOptions};
use futures_util::StreamExt;

use crate::support::*;

/// Pushed by provisioning into the registry on loopback.
const REGISTRY_IMAGE: &str = "127.0.0.1:5000/berth/busybox:1.35";

#[tokio::test]
async fn an_image_is_pulled_from_the_local_registry_with_progress() {
    let docker = docker().await;
    // Start from nothing: the tag is removed so the pull must fetch it.
    let _ = docker.remove_image(REGISTRY_IMAGE, RemoveImageOptions { force: true, no_prune: true }).await;
    let mut progress = docker.pull_image(REGISTRY_IMAGE).await.unwrap();
    let mut statuses = Vec::new();
    while let Some(line) = progress.next().await {
        statuses.push(line.unwrap().status.unwrap_or_default());
    }
    assert!(statuses.iter().any(|s| s.contains("Pulling from") || s.contains("Pulling fs layer")), "{statuses:?}");
    assert!(
        statuses.last().unwrap().contains(REGISTRY_IMAGE) || statuses.iter().any(|s| s.starts_with("Digest:")),
        "{statuses:?}"
    );
    let image = docker.inspect_image(REGISTRY_IMAGE).await.unwrap();
    assert!(image.repo_tags.iter().any(|t| t == REGISTRY_IMAGE));
}

#[tokio::test]
async fn a_pull_of_a_missing_image_is_not_found_with_the_daemons_message() {
    let docker = docker().await;
    let err = match docker.pull_image("127.0.0.1:5000/berth/no-such-image:0").await {
        Err(e) => e,
        // Daemons that answer 200 first report the failure inside the stream.
        Ok(mut progress) => loop {
            match progress.next().await {
                Some(Err(e)) => break e,
                Some(Ok(_)) => continue,
                None => panic!("a pull of a missing image ended without an error"),
            }
        },
    };
    match err {
        Error::NotFound { message } | Error::Stream { message, .. } => {
            assert!(message.contains("no-such-image"), "{message}")
        }
        other => panic!("expected NotFound or a stream error, got {other:?}"),
    }
}

fn tiny_rootfs() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    let content = b"berth import test\n";
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, "etc/berth-test", &content[..]).unwrap();
    builder.into_inner().unwrap()
}

#[tokio::test]
async fn images_are_imported_listed_exported_removed_and_loaded_back() {
    let docker = docker().await;
    let reference = format!("berth-test/imported:{}", std::process::id());
    let mut progress = docker.import_image(RequestBody::Full(Bytes::from(tiny_rootfs())), &reference).await.unwrap();
    while let Some(line) = progress.next().await {
        line.unwrap();
    }
    let image = docker.inspect_image(&reference).await.unwrap();
    let listed = docker.list_images(false, &Filters::new().add("reference", reference.clone())).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, image.id);

    let saved: Vec<u8> =
        docker.export_image(&reference).await.unwrap().map(|c| c.unwrap()).collect::<Vec<_>>().await.concat();
    let removed = docker.remove_image(&reference, RemoveImageOptions::default()).await.unwrap();
    assert!(removed.iter().any(|r| r.untagged.as_deref() == Some(reference.as_str())));
    assert!(docker.inspect_image(&reference).await.unwrap_err().is_not_found());

    let mut progress = docker.load_images(RequestBody::Full(Bytes::from(saved))).await.unwrap();
    while let Some(line) = progress.next().await {
        line.unwrap();
    }
    assert_eq!(docker.inspect_image(&reference).await.unwrap().id, image.id);
    docker.remove_image(&reference, RemoveImageOptions { force: true, no_prune: false }).await.unwrap();
}
