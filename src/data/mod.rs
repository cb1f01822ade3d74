//! The data channel: opening it (passive port pool, active connect with
//! bounce protection) and moving bytes over it (buffered copy loops, ASCII
//! line-ending conversion, progress for STAT).

pub mod ascii;
pub mod channel;
pub mod copy;

pub use channel::{DataSetup, PassiveListener, PassivePorts};
pub use copy::{Progress, TransferError};
