//! The gRPC handlers: decode, authorize, call the domain and the store, map
//! errors. Nothing here decides a rule of the exchange.

pub mod admin;
pub mod cursor;
pub mod decode;
pub mod encode;
pub mod error;
pub mod exchange;
pub mod feed;
pub mod identity;
pub mod readiness;
pub mod token;

pub use error::ApiError;
pub use exchange::ExchangeService;
pub use feed::Feed;
pub use identity::Caller;
pub use readiness::Readiness;
