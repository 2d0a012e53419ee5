//! Device-memory accounting: the analytic planner (predict the peak before anything runs).

pub mod planner;
pub mod probe;
pub mod sampler;
