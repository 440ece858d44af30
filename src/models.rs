//! Ready-made networks.

use crate::error::Result;
use crate::layers::{Conv2d, Dense, Flatten, Layer, MaxPool2d, ReLU};
use crate::model::Sequential;

/// The article's network, the classic PyTorch CIFAR-10 tutorial classifier:
/// conv 3→6 5×5, ReLU, pool 2, conv 6→16 5×5, ReLU, pool 2, dense 400→120→84→10.
pub fn seed_net(seed: u64) -> Result<Sequential> {
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(Conv2d::new(3, 6, 5)),
        Box::new(ReLU::new()),
        Box::new(MaxPool2d::new(2, 2)),
        Box::new(Conv2d::new(6, 16, 5)),
        Box::new(ReLU::new()),
        Box::new(MaxPool2d::new(2, 2)),
        Box::new(Flatten::new()),
        Box::new(Dense::new(16 * 5 * 5, 120)),
        Box::new(ReLU::new()),
        Box::new(Dense::new(120, 84)),
        Box::new(ReLU::new()),
        Box::new(Dense::new(84, 10)),
    ];
    Sequential::new(&[3, 32, 32], layers, seed)
}
