"""XMP packets and IPTC IIM records read as findings: location (GPS, city, state, country,
sub-location, shown/created locations), time (creation and digitising dates), identity
(creator, rights, serial numbers, unique document ids) and device (camera, lens, software)."""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET

from ml.privacy import DEVICE, IDENTITY, LOCATION, OTHER, TIME

NS = {
    "http://ns.adobe.com/exif/1.0/": "exif",
    "http://cipa.jp/exif/1.0/": "exifEX",
    "http://ns.adobe.com/tiff/1.0/": "tiff",
    "http://ns.adobe.com/photoshop/1.0/": "photoshop",
    "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/": "Iptc4xmpCore",
    "http://iptc.org/std/Iptc4xmpExt/2008-02-29/": "Iptc4xmpExt",
    "http://ns.adobe.com/xap/1.0/": "xmp",
    "http://purl.org/dc/elements/1.1/": "dc",
    "http://ns.adobe.com/exif/1.0/aux/": "aux",
    "http://ns.adobe.com/xap/1.0/mm/": "xmpMM",
    "http://ns.adobe.com/xap/1.0/rights/": "xmpRights",
}
LOCATION_NAMES = {"City", "State", "Country", "CountryCode", "Location", "Sublocation", "ProvinceState"}
LOCATION_NAMES |= {"CountryName", "WorldRegion", "LocationShown", "LocationCreated", "LocationId"}
GPS_NAMES = re.compile(r"^GPS(?!VersionID|MapDatum|.*Ref$)")
KINDS = {
    ("xmp", "CreateDate"): TIME,
    ("xmp", "ModifyDate"): TIME,
    ("xmp", "MetadataDate"): TIME,
    ("photoshop", "DateCreated"): TIME,
    ("exif", "DateTimeOriginal"): TIME,
    ("exif", "DateTimeDigitized"): TIME,
    ("dc", "creator"): IDENTITY,
    ("dc", "rights"): IDENTITY,
    ("xmpRights", "Owner"): IDENTITY,
    ("photoshop", "AuthorsPosition"): IDENTITY,
    ("photoshop", "Credit"): IDENTITY,
    ("Iptc4xmpCore", "CreatorContactInfo"): IDENTITY,
    ("aux", "SerialNumber"): IDENTITY,
    ("aux", "LensSerialNumber"): IDENTITY,
    ("aux", "OwnerName"): IDENTITY,
    ("exifEX", "BodySerialNumber"): IDENTITY,
    ("exifEX", "LensSerialNumber"): IDENTITY,
    ("exifEX", "CameraOwnerName"): IDENTITY,
    ("xmpMM", "DocumentID"): IDENTITY,
    ("xmpMM", "OriginalDocumentID"): IDENTITY,
    ("xmpMM", "InstanceID"): IDENTITY,
    ("exif", "ImageUniqueID"): IDENTITY,
    ("tiff", "Make"): DEVICE,
    ("tiff", "Model"): DEVICE,
    ("tiff", "Software"): DEVICE,
    ("xmp", "CreatorTool"): DEVICE,
    ("aux", "Lens"): DEVICE,
    ("aux", "LensID"): DEVICE,
    ("exifEX", "LensMake"): DEVICE,
    ("exifEX", "LensModel"): DEVICE,
    ("dc", "description"): OTHER,
    ("dc", "title"): OTHER,
}
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"


def _kind(prefix: str, name: str) -> str | None:
    if prefix in ("exif", "exifEX") and GPS_NAMES.match(name):
        return TIME if name in ("GPSTimeStamp", "GPSDateStamp", "GPSDateTime") else LOCATION
    if prefix in ("photoshop", "Iptc4xmpCore", "Iptc4xmpExt") and name in LOCATION_NAMES:
        return LOCATION
    return KINDS.get((prefix, name))


def _split(qname: str) -> tuple[str, str]:
    if qname.startswith("{"):
        uri, name = qname[1:].split("}", 1)
        return NS.get(uri, ""), name
    return "", qname


def _text(el: ET.Element) -> str:
    parts = [t.strip() for t in el.itertext() if t.strip()]
    parts += [v for k, v in el.attrib.items() if not k.startswith(RDF) and v.strip()]
    return "; ".join(parts)[:200]


def xmp_findings(packet: bytes | str) -> list[dict]:
    """Every property of a known kind, as an element or an attribute, wherever it is nested."""
    text = packet.decode("utf-8", "replace") if isinstance(packet, bytes) else packet
    start, end = text.find("<x:xmpmeta"), text.rfind("</x:xmpmeta>")
    if start < 0:
        start, end = text.find("<rdf:RDF"), text.rfind("</rdf:RDF>") + len("</rdf:RDF>") - len("</x:xmpmeta>")
    if start < 0 or end < 0:
        return [{"kind": OTHER, "field": "XMP", "value": "an XMP packet that could not be read"}]
    try:
        root = ET.fromstring(text[start : end + len("</x:xmpmeta>")])
    except ET.ParseError:
        return [{"kind": OTHER, "field": "XMP", "value": "an XMP packet that could not be read"}]
    out, seen = [], set()

    def add(prefix: str, name: str, value: str) -> None:
        kind = _kind(prefix, name)
        if kind and value and (prefix, name, value) not in seen:
            seen.add((prefix, name, value))
            out.append({"kind": kind, "field": f"XMP-{prefix}:{name}", "value": value})

    for el in root.iter():
        prefix, name = _split(el.tag)
        if prefix:
            add(prefix, name, _text(el))
        for key, value in el.attrib.items():
            p, n = _split(key)
            if p:
                add(p, n, value.strip()[:200])
    return out


IIM = {  # record 2 datasets
    90: ("City", LOCATION),
    92: ("Sub-location", LOCATION),
    95: ("Province-State", LOCATION),
    100: ("Country-PrimaryLocationCode", LOCATION),
    101: ("Country-PrimaryLocationName", LOCATION),
    55: ("DateCreated", TIME),
    60: ("TimeCreated", TIME),
    62: ("DigitalCreationDate", TIME),
    63: ("DigitalCreationTime", TIME),
    80: ("By-line", IDENTITY),
    85: ("By-lineTitle", IDENTITY),
    110: ("Credit", IDENTITY),
    115: ("Source", IDENTITY),
    116: ("CopyrightNotice", IDENTITY),
    118: ("Contact", IDENTITY),
    122: ("Writer-Editor", IDENTITY),
    120: ("Caption-Abstract", OTHER),
}


def photoshop_iptc(payload: bytes) -> bytes | None:
    """The IPTC-NAA block (resource 0x0404) of a Photoshop APP13 payload ("Photoshop 3.0\\0" + 8BIM)."""
    if not payload.startswith(b"Photoshop 3.0\0"):
        return None
    pos = 14
    while pos + 12 <= len(payload) and payload[pos : pos + 4] == b"8BIM":
        (rid,) = struct.unpack(">H", payload[pos + 4 : pos + 6])
        name_len = payload[pos + 6]
        pos += 7 + name_len + ((name_len + 1) & 1)  # Pascal name padded to even
        if pos + 4 > len(payload):
            return None
        (size,) = struct.unpack(">I", payload[pos : pos + 4])
        data = payload[pos + 4 : pos + 4 + size]
        if rid == 0x0404:
            return data
        pos += 4 + size + (size & 1)
    return None


def iptc_findings(block: bytes) -> list[dict]:
    out, pos = [], 0
    while pos + 5 <= len(block) and block[pos] == 0x1C:
        record, dataset = block[pos + 1], block[pos + 2]
        (size,) = struct.unpack(">H", block[pos + 3 : pos + 5])
        pos += 5
        if size & 0x8000:  # extended length: the next (size & 0x7fff) bytes hold it
            n = size & 0x7FFF
            size, pos = int.from_bytes(block[pos : pos + n], "big"), pos + n
        value = block[pos : pos + size].decode("utf-8", "replace").strip()
        pos += size
        if record == 2 and dataset in IIM and value:
            field, kind = IIM[dataset]
            out.append({"kind": kind, "field": f"IPTC:{field}", "value": value[:200]})
    return out
