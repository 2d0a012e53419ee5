//! locosep: a native stem separator built on TF-Locoformer and burn.
//!
//! Rooms (the data path; arrows point one way): `audio` → `dsp` → `model` → `kernels`;
//! `memory` plans and measures; `engine` drives a separation; `synth` renders training songs;
//! `catalog` knows the public checkpoints and installs them; `cli` is the headless front end.

pub mod assets;
pub mod audio;
pub mod cancel;
pub mod catalog;
pub mod cli;
pub mod dsp;
pub mod engine;
pub mod gui;
pub mod kernels;
pub mod memory;
pub mod model;
pub mod synth;
pub mod train;
