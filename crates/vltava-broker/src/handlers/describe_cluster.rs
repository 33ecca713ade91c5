//! DescribeCluster (60): the cluster id, the brokers, and this node as "controller" (KRaft
//! brokers point admin clients at a broker; they cannot reach controllers directly).

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::{self, ConnectionError};

/// `endpoint_type` 1 = brokers (KIP-919); 2 = controllers, which we do not expose here.
const BROKERS: i8 = 1;

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: DescribeClusterRequest,
) -> Result<Reply, ConnectionError> {
    let image = broker.image();
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(
            image.cluster_id().unwrap_or_default().to_string(),
        ))
        .with_controller_id(BrokerId(broker.node_id()));
    if ctx.api_version >= 1 {
        response.endpoint_type = request.endpoint_type;
        if request.endpoint_type != BROKERS {
            response.error_code = error::UNSUPPORTED_VERSION;
            response.error_message = Some(StrBytes::from_static_str(
                "Only endpoint type 1 (brokers) is supported.",
            ));
            return ctx.reply(&response);
        }
    }
    response.brokers = image
        .brokers()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.node_id))
                .with_host(StrBytes::from_string(b.host.clone()))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.clone().map(StrBytes::from_string))
        })
        .collect();
    ctx.reply(&response)
}
