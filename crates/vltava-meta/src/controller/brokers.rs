//! Broker registration.

use crate::error::ControllerError;
use crate::image::MetadataImage;
use crate::records::MetadataRecord;

/// Records that register `node_id` at `host:port`. Empty when the image already holds exactly
/// this registration, so a restart does not grow the metadata log.
pub fn register_broker(
    image: &MetadataImage,
    node_id: i32,
    host: &str,
    port: u16,
    rack: Option<&str>,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    if node_id < 0 {
        return Err(ControllerError::InvalidRequest(format!(
            "Invalid broker id {node_id}: it must not be negative."
        )));
    }
    if host.is_empty() {
        return Err(ControllerError::InvalidRequest(format!(
            "Broker {node_id} registered without a host."
        )));
    }
    if let Some(existing) = image.broker(node_id) {
        if existing.host == host && existing.port == port && existing.rack.as_deref() == rack {
            return Ok(Vec::new());
        }
    }
    Ok(vec![MetadataRecord::RegisterBroker {
        node_id,
        host: host.to_string(),
        port,
        rack: rack.map(str::to_string),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::apply_batch;

    #[test]
    fn re_registering_the_same_endpoint_writes_nothing() {
        let image = MetadataImage::empty();
        let records = register_broker(&image, 1, "localhost", 9092, None).expect("ok");
        assert_eq!(records.len(), 1);
        let image = apply_batch(&image, &records).expect("apply");
        assert!(register_broker(&image, 1, "localhost", 9092, None)
            .expect("ok")
            .is_empty());
        assert_eq!(
            register_broker(&image, 1, "localhost", 9093, None)
                .expect("ok")
                .len(),
            1
        );
    }

    #[test]
    fn negative_node_id_is_rejected() {
        let err = register_broker(&MetadataImage::empty(), -1, "h", 1, None).expect_err("bad id");
        assert_eq!(err.kafka_error_code(), 42);
    }
}
