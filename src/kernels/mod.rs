//! burn backend extensions: fused kernels and their plain-ops references.
//!
//! Depends on burn only. [`attention`] holds the fused attention used by the model's
//! frequency and time paths.

pub mod attention;
pub mod device;
