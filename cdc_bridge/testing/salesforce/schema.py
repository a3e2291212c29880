"""SObject schemas for the emulator: field definitions, describe output, built-in objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .ids import custom_prefix

TEXT_TYPES = frozenset(
    {
        "string",
        "textarea",
        "email",
        "phone",
        "url",
        "picklist",
        "multipicklist",
        "combobox",
        "encryptedstring",
    }
)
NUMBER_TYPES = frozenset({"double", "currency", "percent", "int", "long"})

_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "int": "xsd:int",
    "long": "xsd:long",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
}


@dataclass
class FieldDef:
    """One field as describe reports it; only the properties the emulator enforces."""

    name: str
    type: str = "string"
    label: str = ""
    length: int = 0
    precision: int = 0
    scale: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    external_id: bool = False
    id_lookup: bool = False
    unique: bool = False
    case_sensitive: bool = False
    defaulted_on_create: bool = False
    default_value: Any = None
    picklist_values: list[str] = field(default_factory=list)
    restricted_picklist: bool = False
    reference_to: list[str] = field(default_factory=list)
    relationship_name: str | None = None
    auto_number: bool = False

    @property
    def required_on_create(self) -> bool:
        return not self.nillable and not self.defaulted_on_create and self.createable

    def describe(self) -> dict[str, Any]:
        """The describe JSON for this field (a realistic subset of the real keys)."""
        text = self.type in TEXT_TYPES
        return {
            "name": self.name,
            "label": self.label or self.name.removesuffix("__c").replace("_", " "),
            "type": self.type,
            "soapType": _SOAP_TYPES.get(self.type, "xsd:string"),
            "length": self.length if text else 0,
            "byteLength": self.length * 3
            if text
            else (18 if self.type in ("id", "reference") else 0),
            "precision": self.precision,
            "scale": self.scale,
            "digits": 9 if self.type == "int" else 0,
            "nillable": self.nillable,
            "createable": self.createable,
            "updateable": self.updateable,
            "externalId": self.external_id,
            "idLookup": self.id_lookup or self.external_id or self.type == "id",
            "unique": self.unique,
            "caseSensitive": self.case_sensitive,
            "defaultedOnCreate": self.defaulted_on_create,
            "defaultValue": self.default_value,
            "autoNumber": self.auto_number,
            "custom": self.name.endswith("__c"),
            "calculated": False,
            "filterable": True,
            "sortable": self.type != "textarea",
            "groupable": self.type not in ("textarea", "double", "currency", "percent", "datetime"),
            "restrictedPicklist": self.restricted_picklist,
            "picklistValues": [
                {"active": True, "defaultValue": False, "label": v, "validFor": None, "value": v}
                for v in self.picklist_values
            ],
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "relationshipOrder": None,
            "cascadeDelete": False,
            "polymorphicForeignKey": len(self.reference_to) > 1,
        }


@dataclass
class ObjectSchema:
    """One SObject: its name, key prefix and fields (system fields are added automatically)."""

    name: str
    fields: list[FieldDef]
    key_prefix: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        self.by_name: dict[str, FieldDef] = {}
        self._index()

    def _index(self) -> None:
        self.by_name = {f.name.lower(): f for f in self.fields}
        self.by_relationship = {
            f.relationship_name.lower(): f for f in self.fields if f.relationship_name
        }

    @property
    def custom(self) -> bool:
        return self.name.endswith("__c")

    def field(self, name: str) -> FieldDef | None:
        return self.by_name.get(name.lower())

    def describe(self, api_version: str) -> dict[str, Any]:
        """The `sobjects/{Name}/describe` body."""
        return {
            **self.basic(api_version),
            "fields": [f.describe() for f in self.fields],
            "childRelationships": [],
            "recordTypeInfos": [],
            "supportedScopes": [],
        }

    def basic(self, api_version: str) -> dict[str, Any]:
        """The per-object entry of the global describe."""
        base = f"/services/data/v{api_version}/sobjects/{self.name}"
        return {
            "name": self.name,
            "label": self.label or self.name.removesuffix("__c").replace("_", " "),
            "labelPlural": (self.label or self.name.removesuffix("__c")) + "s",
            "keyPrefix": self.key_prefix,
            "custom": self.custom,
            "customSetting": False,
            "createable": True,
            "updateable": True,
            "deletable": True,
            "undeletable": True,
            "queryable": True,
            "retrieveable": True,
            "searchable": True,
            "layoutable": True,
            "triggerable": True,
            "replicateable": True,
            "mergeable": False,
            "activateable": False,
            "feedEnabled": False,
            "urls": {
                "sobject": base,
                "describe": f"{base}/describe",
                "rowTemplate": f"{base}/{{ID}}",
            },
        }


def _system_fields(name: str) -> list[FieldDef]:
    ro = {"createable": False, "updateable": False, "nillable": False, "defaulted_on_create": True}
    return [
        FieldDef("Id", "id", label=f"{name} ID", length=18, id_lookup=True, **ro),  # type: ignore[arg-type]
        FieldDef("IsDeleted", "boolean", label="Deleted", **ro),  # type: ignore[arg-type]
        FieldDef("CreatedDate", "datetime", label="Created Date", **ro),  # type: ignore[arg-type]
        FieldDef("LastModifiedDate", "datetime", label="Last Modified Date", **ro),  # type: ignore[arg-type]
        FieldDef("SystemModstamp", "datetime", label="System Modstamp", **ro),  # type: ignore[arg-type]
    ]


def _s(name: str, length: int = 255, **kw: Any) -> FieldDef:
    return FieldDef(name, "string", length=length, **kw)


STAGES = [
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Id. Decision Makers",
    "Perception Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
]


def default_objects() -> list[ObjectSchema]:
    """Account, Contact and Opportunity with their usual required fields and an External_Id__c."""
    account = ObjectSchema(
        "Account",
        [
            *_system_fields("Account"),
            _s("Name", id_lookup=True, nillable=False),
            _s("AccountNumber", 40),
            FieldDef(
                "Type",
                "picklist",
                length=255,
                picklist_values=[
                    "Prospect",
                    "Customer - Direct",
                    "Customer - Channel",
                    "Partner",
                    "Other",
                ],
            ),
            FieldDef(
                "Industry",
                "picklist",
                length=255,
                picklist_values=["Agriculture", "Banking", "Technology", "Retail", "Other"],
            ),
            FieldDef("AnnualRevenue", "currency", precision=18, scale=0),
            FieldDef("NumberOfEmployees", "int", precision=8),
            FieldDef("Phone", "phone", length=40),
            FieldDef("Website", "url", length=255),
            FieldDef("Description", "textarea", length=32000),
            _s("BillingCity", 40),
            _s("BillingCountry", 80),
            FieldDef(
                "ParentId",
                "reference",
                length=18,
                reference_to=["Account"],
                relationship_name="Parent",
            ),
            _s("External_Id__c", 255, external_id=True, unique=True),
        ],
        key_prefix="001",
    )
    contact = ObjectSchema(
        "Contact",
        [
            *_system_fields("Contact"),
            _s("FirstName", 40),
            _s("LastName", 80, nillable=False),
            FieldDef(
                "Name",
                "string",
                length=121,
                createable=False,
                updateable=False,
                nillable=False,
                defaulted_on_create=True,
            ),
            FieldDef("Email", "email", length=80, id_lookup=True),
            FieldDef("Phone", "phone", length=40),
            _s("Title", 128),
            FieldDef("Birthdate", "date"),
            FieldDef(
                "HasOptedOutOfEmail",
                "boolean",
                nillable=False,
                defaulted_on_create=True,
                default_value=False,
            ),
            FieldDef(
                "AccountId",
                "reference",
                length=18,
                reference_to=["Account"],
                relationship_name="Account",
            ),
            _s("External_Id__c", 255, external_id=True, unique=True),
        ],
        key_prefix="003",
    )
    opportunity = ObjectSchema(
        "Opportunity",
        [
            *_system_fields("Opportunity"),
            _s("Name", 120, nillable=False),
            FieldDef(
                "StageName",
                "picklist",
                length=255,
                nillable=False,
                picklist_values=STAGES,
                restricted_picklist=True,
            ),
            FieldDef("CloseDate", "date", nillable=False),
            FieldDef("Amount", "currency", precision=18, scale=2),
            FieldDef("Probability", "percent", precision=3, scale=0),
            FieldDef(
                "IsClosed",
                "boolean",
                createable=False,
                updateable=False,
                nillable=False,
                defaulted_on_create=True,
            ),
            FieldDef(
                "AccountId",
                "reference",
                length=18,
                reference_to=["Account"],
                relationship_name="Account",
            ),
            FieldDef("Description", "textarea", length=32000),
            _s("External_Id__c", 255, external_id=True, unique=True),
        ],
        key_prefix="006",
    )
    return [account, contact, opportunity]


_FIELD_KEYS = {
    "type": "type",
    "label": "label",
    "length": "length",
    "precision": "precision",
    "scale": "scale",
    "nillable": "nillable",
    "createable": "createable",
    "updateable": "updateable",
    "externalId": "external_id",
    "external_id": "external_id",
    "idLookup": "id_lookup",
    "unique": "unique",
    "caseSensitive": "case_sensitive",
    "defaultedOnCreate": "defaulted_on_create",
    "defaultValue": "default_value",
    "restrictedPicklist": "restricted_picklist",
    "relationshipName": "relationship_name",
    "autoNumber": "auto_number",
}


def field_from_dict(spec: dict[str, Any]) -> FieldDef:
    """Build a FieldDef from describe-style JSON (`externalId`, `picklistValues`, ...)."""
    if "name" not in spec:
        raise ValueError(f"field description without 'name': {spec!r}")
    kwargs: dict[str, Any] = {}
    for key, attr in _FIELD_KEYS.items():
        if key in spec:
            kwargs[attr] = spec[key]
    values = spec.get("picklistValues") or spec.get("picklist_values") or []
    kwargs["picklist_values"] = [v["value"] if isinstance(v, dict) else str(v) for v in values]
    ref = spec.get("referenceTo") or spec.get("reference_to") or []
    kwargs["reference_to"] = [ref] if isinstance(ref, str) else list(ref)
    ftype = kwargs.get("type", "string")
    if ftype in TEXT_TYPES and not kwargs.get("length"):
        kwargs["length"] = 255
    if ftype == "reference" and not kwargs.get("relationship_name"):
        name = spec["name"]
        kwargs["relationship_name"] = (
            name[:-3] + "__r" if name.endswith("__c") else name.removesuffix("Id")
        )
    if ftype in ("double", "currency", "percent") and not kwargs.get("precision"):
        kwargs["precision"] = 18
        kwargs.setdefault("scale", 2)
    return FieldDef(spec["name"], **kwargs)


def object_from_dict(spec: dict[str, Any], index: int = 0) -> ObjectSchema:
    """Build an ObjectSchema from `{"name": ..., "keyPrefix"?: ..., "fields": [...]}`.

    System fields (Id, IsDeleted, CreatedDate, ...) are added; a custom object without a
    Name field gets an auto-number Name, as Salesforce does.
    """
    name = spec.get("name")
    if not name:
        raise ValueError(f"object description without 'name': {spec!r}")
    fields = [field_from_dict(f) for f in spec.get("fields", [])]
    names = {f.name.lower() for f in fields}
    system = [f for f in _system_fields(name) if f.name.lower() not in names]
    if "name" not in names:
        system.append(
            FieldDef(
                "Name",
                "string",
                length=80,
                nillable=False,
                createable=False,
                updateable=False,
                defaulted_on_create=True,
                auto_number=True,
                id_lookup=True,
            )
        )
    prefix = spec.get("keyPrefix") or spec.get("key_prefix") or custom_prefix(index)
    return ObjectSchema(name, [*system, *fields], key_prefix=prefix, label=spec.get("label", ""))


def objects_from_json(data: Any) -> list[ObjectSchema]:
    """Accept a list of object descriptions or `{"objects": [...]}`."""
    items = data.get("objects", []) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ValueError('schema JSON must be a list of objects or {"objects": [...]}')
    return [object_from_dict(item, i) for i, item in enumerate(items)]
