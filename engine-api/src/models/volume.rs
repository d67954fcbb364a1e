use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lenient;

/// Body of `POST /volumes/create`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeConfig {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    pub name: String,
    #[serde(default)]
    pub driver: String,
    #[serde(default)]
    pub mountpoint: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub created_at: Option<String>,
}

/// `GET /volumes`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeList {
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub volumes: Vec<Volume>,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub warnings: Vec<String>,
}
