"""Local Salesforce REST API emulator (test double for tests, benchmarks and the demo)."""

from __future__ import annotations

from .auth import AuthConfig
from .client import EmulatorAdapter, emulator_session, simple_salesforce_client
from .emulator import Call, SalesforceEmulator
from .faults import FaultConfig
from .ids import checksum, to18
from .schema import FieldDef, ObjectSchema, default_objects, object_from_dict, objects_from_json

__all__ = [
    "AuthConfig",
    "Call",
    "EmulatorAdapter",
    "FaultConfig",
    "FieldDef",
    "ObjectSchema",
    "SalesforceEmulator",
    "checksum",
    "default_objects",
    "emulator_session",
    "object_from_dict",
    "objects_from_json",
    "simple_salesforce_client",
    "to18",
]
