"""Salesforce sink: upserts and deletes by external ID through sObject Collections and Bulk API 2.0."""

from __future__ import annotations

from cdc_bridge.sinks.salesforce.config import SalesforceRouteConfig, SalesforceSinkConfig

__all__ = ["SalesforceRouteConfig", "SalesforceSink", "SalesforceSinkConfig"]


def __getattr__(name: str) -> object:
    if name == "SalesforceSink":
        from cdc_bridge.sinks.salesforce.sink import SalesforceSink

        return SalesforceSink
    raise AttributeError(name)
