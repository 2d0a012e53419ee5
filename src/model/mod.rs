//! TF-Locoformer and BS-Locoformer in burn: configuration, layers, network, checkpoint
//! loading.
//!
//! Runs on any burn [`Device`](burn::tensor::Device) (wgpu, flex, with or without autodiff).

pub mod bandsplit;
pub mod checkpoint;
pub mod config;
pub mod conv;
pub mod folder;
mod host;
pub mod layers;
pub mod loader;
pub mod network;
pub mod path;
pub mod reduce;
pub mod state_dict;

pub use config::{ModelConfig, Preset};
pub use network::{AttentionImpl, ForwardOptions, HostNetwork, TfLocoformer};
