use engine_api::models::{EndpointSettings, HostConfig, NetworkConfig, NetworkConnect, NetworkDisconnect};
use engine_api::{Filters, RemoveOptions};

use crate::support::*;

#[tokio::test]
async fn on_an_internal_network_containers_reach_each_other_by_name_and_nothing_outside() {
    let docker = docker().await;
    let test = "internal-net";
    let net_name = unique(test);
    let net = docker
        .create_network(&NetworkConfig {
            name: net_name.clone(),
            internal: true,
            labels: labels(test),
            ..Default::default()
        })
        .await
        .unwrap();
    let inspect = docker.inspect_network(&net.id).await.unwrap();
    assert!(inspect.internal);
    assert_eq!(inspect.labels.get(TEST_LABEL).map(String::as_str), Some(test));

    // A server on the internal network, known there by an alias.
    let mut server = sh(test, "mkdir -p /www && echo pong > /www/index.html && httpd -f -p 8080 -h /www");
    server.host_config = Some(HostConfig { network_mode: Some(net_name.clone()), ..Default::default() });
    let server_id = docker.create_container(Some(&unique(test)), &server).await.unwrap().id;
    docker.start_container(&server_id).await.unwrap();
    docker
        .disconnect_network(&net.id, &NetworkDisconnect { container: server_id.clone(), force: false })
        .await
        .unwrap();
    let alias = format!("{net_name}-svc");
    let connect = NetworkConnect {
        container: server_id.clone(),
        endpoint_config: Some(EndpointSettings { aliases: Some(vec![alias.clone()]), ..Default::default() }),
    };
    docker.connect_network(&net.id, &connect).await.unwrap();
    assert!(docker.inspect_network(&net.id).await.unwrap().containers.contains_key(&server_id));

    // A server on the default bridge: outside the internal network.
    let outside = docker
        .create_container(
            Some(&unique(test)),
            &sh(test, "mkdir -p /www && echo no > /www/index.html && httpd -f -p 8080 -h /www"),
        )
        .await
        .unwrap()
        .id;
    docker.start_container(&outside).await.unwrap();
    let outside_ip = docker.inspect_container(&outside).await.unwrap().network_settings.unwrap().networks["bridge"]
        .ip_address
        .clone()
        .unwrap();

    // The client runs in the python image: busybox's static wget cannot resolve names.
    let script = format!(
        r#"
import time, urllib.request
def get(url):
    try:
        return urllib.request.urlopen(url, timeout=2).read().decode()
    except Exception:
        return None
for _ in range(20):
    body = get("http://{alias}:8080/")
    if body:
        print(body, end="")
        break
    time.sleep(0.3)
print(get("http://{outside_ip}:8080/") or "outside-unreachable")
"#
    );
    let mut client = sh(test, "");
    client.image = Some(PYTHON.into());
    client.cmd = Some(vec!["python3".into(), "-c".into(), script]);
    client.host_config = Some(HostConfig { network_mode: Some(net_name.clone()), ..Default::default() });
    let (client_id, code) = run_to_exit(&docker, test, &client).await;
    let opts = engine_api::LogsOptions { stdout: true, stderr: true, ..Default::default() };
    let (out, err, _) = collect(docker.logs(&client_id, &opts).await.unwrap()).await;
    let out = String::from_utf8(out).unwrap();
    assert_eq!(out, "pong\noutside-unreachable\n", "stderr: {}", String::from_utf8_lossy(&err));
    assert_eq!(code, 0);

    for id in [&server_id, &outside, &client_id] {
        docker.remove_container(id, RemoveOptions { force: true, volumes: false }).await.unwrap();
    }
    let listed = docker.list_networks(&Filters::new().label(format!("{TEST_LABEL}={test}"))).await.unwrap();
    assert!(listed.iter().any(|n| n.id == net.id));
    docker.remove_network(&net.id).await.unwrap();
    assert!(docker.inspect_network(&net.id).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn unused_networks_are_pruned_by_label() {
    let docker = docker().await;
    let test = "net-prune";
    let name = unique(test);
    docker
        .create_network(&NetworkConfig { name: name.clone(), labels: labels(test), ..Default::default() })
        .await
        .unwrap();
    let pruned = docker.prune_networks(&Filters::new().label(format!("{TEST_LABEL}={test}"))).await.unwrap();
    assert_eq!(pruned.networks_deleted, vec![name]);
}
