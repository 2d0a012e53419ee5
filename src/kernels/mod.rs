//! Backend extensions: fused attention.
pub mod attention;
