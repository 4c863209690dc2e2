//! What the experiments' integration tests share: scratch folders from the test kit.

pub use cnn_testkit::{Scratch, scratch};
