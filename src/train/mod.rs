//! Training and evaluation: datasets (MUSDB18-HQ folders, own stems), augmentation, loss,
//! the loop, and metrics over tracks.

pub mod augment;
pub mod checkpoint;
pub mod clip;
pub mod curves;
pub mod dataset;
pub mod error;
pub mod eval;
pub mod loss;
pub mod run_dir;
pub mod spectral;
pub mod step;
pub mod trainer;
pub mod worker;

pub use trainer::{TrainConfig, TrainEvent, TrainState, train};
