use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::container::EndpointSettings;
use super::lenient;

/// Body of `POST /networks/create`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkConfig {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// No route out of the network: members reach only each other.
    pub internal: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachable: Option<bool>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkCreated {
    #[serde(alias = "id")]
    pub id: String,
    #[serde(default)]
    pub warning: Option<String>,
}

/// `GET /networks/{id}` and entries of `GET /networks`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Network {
    #[serde(alias = "id")]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub driver: String,
    #[serde(default)]
    pub scope: String,
    /// RFC 3339 creation time.
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub labels: BTreeMap<String, String>,
    /// Attached containers by id (filled by inspect, empty in lists).
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub containers: BTreeMap<String, NetworkMember>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkMember {
    #[serde(default)]
    pub name: String,
    #[serde(rename = "IPv4Address", default)]
    pub ipv4_address: String,
}

/// Body of `POST /networks/{id}/connect`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkConnect {
    pub container: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_config: Option<EndpointSettings>,
}

/// Body of `POST /networks/{id}/disconnect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkDisconnect {
    pub container: String,
    pub force: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworksPruned {
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub networks_deleted: Vec<String>,
}
