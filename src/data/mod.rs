//! The data channel: opening it (passive port pool, active connect with
//! bounce protection) and moving bytes over it (buffered copy loops, ASCII
//! line-ending conversion, progress for STAT, bandwidth limits), in clear
//! or in TLS.

pub mod ascii;
pub mod channel;
pub mod copy;
pub mod stream;
pub mod throttle;

pub use channel::{DataSetup, PassiveListener, PassivePorts};
pub use copy::{Progress, TransferError};
pub use stream::DataStream;
