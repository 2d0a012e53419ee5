//! The checkpoint API under its historical path: model weights as plain `f32` tensors
//! ([`StateDict`]), and loading and writing them. Everything lives in
//! [`crate::model::checkpoint`]; this module re-exports it so that
//! `model::state_dict::{StateDict, load_state_dict, write_safetensors, …}` keep working.

pub use super::checkpoint::{
    CheckpointError, StateDict, TensorF32, load_state_dict, load_state_dict_bytes,
    read_safetensors, safetensors_from_bytes, state_dict_from_value, write_safetensors,
};
