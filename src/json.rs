//! Our messages in the protobuf JSON mapping (what buf curl and grpcurl
//! print and take): for the CLI's `--output json`, its JSON Lines input, and
//! the dashboard's endpoints.

use std::sync::OnceLock;

use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};

use crate::proto;

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(proto::FILE_DESCRIPTOR_SET).expect("the compiled descriptors")
    })
}

fn descriptor(name: &str) -> MessageDescriptor {
    pool()
        .get_message_by_name(name)
        .unwrap_or_else(|| panic!("{name} is in the descriptors"))
}

/// Reads one envelope.
pub fn envelope_from_json(line: &str) -> Result<proto::Envelope, String> {
    let mut de = serde_json::Deserializer::from_str(line);
    let message = DynamicMessage::deserialize(descriptor("twoplace.v1.Envelope"), &mut de)
        .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    proto::Envelope::decode(message.encode_to_vec().as_slice()).map_err(|e| e.to_string())
}

/// Any of our messages, named by its full protobuf name.
pub fn to_json<M: prost::Message>(name: &str, message: &M) -> String {
    let dynamic = DynamicMessage::decode(descriptor(name), message.encode_to_vec().as_slice())
        .expect("our own message decodes");
    serde_json::to_string(&dynamic).expect("JSON of a message")
}
