"""A Pub/Sub API client: ``GetTopic``, ``GetSchema`` and the pull-based ``Subscribe`` stream.

gRPC over HTTP/2 with TLS. Every call carries the session as metadata (``accesstoken``,
``instanceurl``, ``tenantid``). ``Subscribe`` is bidirectional: the first ``FetchRequest``
names the topic and the start point (LATEST, EARLIEST, or CUSTOM after a replay id) and every
request asks for ``num_requested`` more events; the server answers with batches of events or,
when idle, with empty keep-alive batches carrying the latest replay id, and ends a stream that
stays idle too long. :class:`Subscription` re-requests as the caller consumes, so at most
``batch_size`` events are ever outstanding.

The method paths and messages are built here from the checked-in ``pubsub_api_pb2`` (generated
from our own ``pubsub_api.proto``); no generated service stub is needed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from cdc_bridge.sources.salesforce.pubsub import pubsub_api_pb2 as pb

__all__ = [
    "REPLAY_CORRUPTED",
    "PubSubClient",
    "PubSubError",
    "ReplayPreset",
    "Session",
    "Subscription",
]

_SERVICE = "/eventbus.v1.PubSub/"
DEFAULT_ENDPOINT = "api.pubsub.salesforce.com:7443"

# The error code Salesforce puts in the trailers for an unusable replay id (for example one
# older than the retention window).
REPLAY_CORRUPTED = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
AUTH_ERROR_PREFIX = "sfdc.platform.eventbus.grpc.service.auth"


class ReplayPreset:
    LATEST = pb.LATEST
    EARLIEST = pb.EARLIEST
    CUSTOM = pb.CUSTOM


@dataclass(frozen=True, slots=True)
class Session:
    """What the metadata headers carry."""

    access_token: str
    instance_url: str
    tenant_id: str

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (
            ("accesstoken", self.access_token),
            ("instanceurl", self.instance_url),
            ("tenantid", self.tenant_id),
        )


class PubSubError(Exception):
    """A failed RPC: gRPC status code, Salesforce error code (trailer ``error-code``), details."""

    def __init__(self, code: grpc.StatusCode, error_code: str, details: str) -> None:
        super().__init__(f"{code.name}: {details}" + (f" [{error_code}]" if error_code else ""))
        self.code = code
        self.error_code = error_code
        self.details = details

    @property
    def replay_lost(self) -> bool:
        """The replay id is unknown to the server (expired out of retention, or corrupt)."""
        return self.error_code == REPLAY_CORRUPTED

    @property
    def auth_failed(self) -> bool:
        return self.code == grpc.StatusCode.UNAUTHENTICATED or self.error_code.startswith(
            AUTH_ERROR_PREFIX
        )

    @property
    def retriable(self) -> bool:
        return self.code in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.INTERNAL,
            grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.ABORTED,
            grpc.StatusCode.CANCELLED,
            grpc.StatusCode.UNKNOWN,
        )

    @classmethod
    def from_rpc(cls, err: grpc.RpcError) -> PubSubError:
        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        details = (err.details() if hasattr(err, "details") else "") or ""
        error_code = ""
        trailers = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
        for key, value in trailers or ():
            if key == "error-code":
                error_code = value.decode() if isinstance(value, bytes) else str(value)
        return cls(code or grpc.StatusCode.UNKNOWN, error_code, details)


def _unary(channel: grpc.Channel, method: str, response: Any) -> Callable[..., Any]:
    return channel.unary_unary(
        _SERVICE + method,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response.FromString,
    )


class PubSubClient:
    """One channel to the Pub/Sub endpoint; ``session()`` supplies the current credentials.

    ``root_certificates``: PEM bytes of the CAs to trust (None: the system's).
    """

    def __init__(
        self,
        endpoint: str,
        session: Callable[[], Session],
        *,
        root_certificates: bytes | None = None,
        insecure: bool = False,
        timeout_s: float = 30.0,
    ) -> None:
        self.endpoint = endpoint
        self._session = session
        self.timeout_s = timeout_s
        options = [
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.keepalive_time_ms", 60_000),
        ]
        if insecure:
            self.channel = grpc.insecure_channel(endpoint, options=options)
        else:
            creds = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self.channel = grpc.secure_channel(endpoint, creds, options=options)
        self._get_topic = _unary(self.channel, "GetTopic", pb.TopicInfo)
        self._get_schema = _unary(self.channel, "GetSchema", pb.SchemaInfo)
        self._subscribe = self.channel.stream_stream(
            _SERVICE + "Subscribe",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=pb.FetchResponse.FromString,
        )

    def close(self) -> None:
        self.channel.close()

    def get_topic(self, topic: str) -> pb.TopicInfo:
        try:
            return self._get_topic(
                pb.TopicRequest(topic_name=topic),
                metadata=self._session().metadata(),
                timeout=self.timeout_s,
            )
        except grpc.RpcError as err:
            raise PubSubError.from_rpc(err) from None

    def get_schema(self, schema_id: str) -> str:
        """The Avro schema (JSON text) with this id."""
        try:
            info = self._get_schema(
                pb.SchemaRequest(schema_id=schema_id),
                metadata=self._session().metadata(),
                timeout=self.timeout_s,
            )
        except grpc.RpcError as err:
            raise PubSubError.from_rpc(err) from None
        return str(info.schema_json)

    def subscribe(
        self,
        topic: str,
        *,
        preset: int = ReplayPreset.LATEST,
        replay_id: bytes = b"",
        batch_size: int = 100,
    ) -> Subscription:
        return Subscription(self, topic, preset, replay_id, batch_size)


_END = object()


class Subscription:
    """One ``Subscribe`` stream. Iterate it for ``FetchResponse`` messages (keep-alives too).

    Flow control: the first request asks for ``batch_size`` events; after the caller took
    events from a response the subscription asks for as many again, so the server never has
    more than ``batch_size`` undelivered requests. :meth:`close` cancels the stream.
    Iteration raises :class:`PubSubError` when the stream fails (server ended it, bad replay
    id, expired session).
    """

    def __init__(
        self, client: PubSubClient, topic: str, preset: int, replay_id: bytes, batch_size: int
    ) -> None:
        self.topic = topic
        self.batch_size = batch_size
        self._requests: queue.Queue[Any] = queue.Queue()
        first = pb.FetchRequest(topic_name=topic, replay_preset=preset, num_requested=batch_size)  # type: ignore[arg-type]
        if preset == ReplayPreset.CUSTOM:
            first.replay_id = replay_id
        self._requests.put(first)
        self._closed = threading.Event()
        self._call = client._subscribe(self._request_iter(), metadata=client._session().metadata())

    def _request_iter(self) -> Iterator[pb.FetchRequest]:
        while True:
            item = self._requests.get()
            if item is _END:
                return
            yield item

    def request(self, n: int) -> None:
        """Ask the server for ``n`` more events."""
        if n > 0 and not self._closed.is_set():
            self._requests.put(pb.FetchRequest(topic_name=self.topic, num_requested=n))

    def __iter__(self) -> Iterator[pb.FetchResponse]:
        try:
            for response in self._call:
                yield response
                if response.events and response.pending_num_requested == 0:
                    self.request(self.batch_size)
        except grpc.RpcError as err:
            if self._closed.is_set():
                return
            raise PubSubError.from_rpc(err) from None

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._requests.put(_END)
            self._call.cancel()
