"""The Pub/Sub API wire layer: gRPC client, Avro event decoding, change-event bitmaps.

Never imports config, Kafka or the CLI, so it is tested with byte fixtures alone.
"""

from cdc_bridge.sources.salesforce.pubsub.bitmap import decode_bitmap, encode_bitmap
from cdc_bridge.sources.salesforce.pubsub.client import (
    DEFAULT_ENDPOINT,
    REPLAY_CORRUPTED,
    PubSubClient,
    PubSubError,
    ReplayPreset,
    Session,
    Subscription,
)
from cdc_bridge.sources.salesforce.pubsub.events import (
    CHANGE_TYPES,
    GAP_TYPES,
    ChangeEventHeader,
    DecodedEvent,
    EventDecoder,
    replay_from_hex,
    replay_to_hex,
)

__all__ = [
    "CHANGE_TYPES",
    "DEFAULT_ENDPOINT",
    "GAP_TYPES",
    "REPLAY_CORRUPTED",
    "ChangeEventHeader",
    "DecodedEvent",
    "EventDecoder",
    "PubSubClient",
    "PubSubError",
    "ReplayPreset",
    "Session",
    "Subscription",
    "decode_bitmap",
    "encode_bitmap",
    "replay_from_hex",
    "replay_to_hex",
]
