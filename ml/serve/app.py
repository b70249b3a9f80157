"""``roost serve``: a local web page and API over one bundle, loaded once at start-up.

``GET /`` the page; ``GET /api/health`` the bundle's id and schema; ``GET /api/countries`` the
bundle's country outlines (simplified GeoJSON: the page's map needs no tile server);
``POST /api/predict`` / ``/api/audit`` / ``/api/strip`` / ``/api/explain`` take multipart field
``files`` and answer what ``roost predict --format json``, ``roost audit --format json`` and
``roost strip`` give (strip: the stripped file itself; explain: the attention overlay PNG).

Uploads are read into memory (``serve.max_file_mb`` a file, ``serve.max_request_mb`` a request,
``serve.max_files`` files: over a limit, 413 and a message), handled as bytes (no path from a
request reaches the file system) and never logged; one bad file in a batch gets its own error.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from jinja2 import Environment, FileSystemLoader
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ml.bundle import bundle_id
from ml.data.images import ImageRejected, load_image
from ml.models.backbone import preprocess
from ml.paths import Paths
from ml.predict import Geolocator, explain, explain_png
from ml.privacy.audit import AuditError, audit_bytes
from ml.privacy.exif import ExifError
from ml.privacy.formats import FormatError
from ml.privacy.strip import KEEP, StripError, strip_bytes
from ml.settings import ServeConfig

HERE = Path(__file__).parent
MB = 1 << 20


class TooLarge(Exception):
    pass


@dataclass
class Upload:
    name: str
    data: bytes


def countries_geojson(geo: Geolocator, tolerance: float) -> dict:
    """The bundle's admin-0 polygons, simplified, as GeoJSON (drawn by the page)."""
    countries = geo.bundle.countries()
    features = []
    for name, geom in zip(countries.get("ADM0_A3", countries.index), countries.geometry):
        simple = shapely.simplify(geom, tolerance, preserve_topology=False)
        if simple is not None and not simple.is_empty:
            features.append(
                {"type": "Feature", "properties": {"id": str(name)}, "geometry": shapely.geometry.mapping(simple)}
            )
    return {"type": "FeatureCollection", "features": features}


async def uploads(request: Request, cfg: ServeConfig) -> list[Upload]:
    """The request's ``files``, read into memory, or ``TooLarge`` with what is over the limit."""
    length = int(request.headers.get("content-length") or 0)
    if length > cfg.max_request_mb * MB:
        raise TooLarge(
            f"the request is {length / MB:.1f} MB; the limit is {cfg.max_request_mb:g} MB (serve.max_request_mb)"
        )
    form = await request.form(max_files=cfg.max_files, max_part_size=int(cfg.max_file_mb * MB) + 1)
    files = []
    try:
        for item in form.getlist("files"):
            if isinstance(item, str):
                continue
            data = await item.read()
            if len(data) > cfg.max_file_mb * MB:
                raise TooLarge(
                    f"{item.filename}: {len(data) / MB:.1f} MB; the limit is {cfg.max_file_mb:g} MB a file "
                    "(serve.max_file_mb)"
                )
            files.append(Upload(Path(item.filename or "upload").name, data))
    finally:
        await form.close()  # the spooled parts are removed now
    return files


def predict_json(geo: Geolocator, files: list[Upload], group: bool) -> list[dict]:
    """What ``roost predict --format json`` answers: a result per file, or one for the group."""
    images, errors = [], []
    for f in files:
        try:
            images.append(load_image(f.data, geo.max_pixels))
            errors.append("")
        except ImageRejected as e:
            images.append(None)
            errors.append(f"{f.name}: {e}")
    if group:
        name = ", ".join(f.name for f in files)
        if any(errors):
            return [{"input": name, "error": "; ".join(e for e in errors if e)}]
        return [{"input": name, "views": len(images)} | geo.predict_arrays([images])[0]]
    good = [i for i, e in enumerate(errors) if not e]
    results = dict(zip(good, geo.predict_arrays([[images[i]] for i in good]))) if good else {}
    out = []
    for i, f in enumerate(files):
        out.append({"input": f.name, "error": errors[i]} if errors[i] else {"input": f.name, "views": 1} | results[i])
    return out


def audit_json(geo: Geolocator, f: Upload) -> dict:
    try:
        _, findings = audit_bytes(f.data, f.name, geo.max_pixels)
        return {"input": f.name, "findings": findings, "visual": None}
    except (AuditError, FormatError, ExifError, ValueError) as e:
        return {"input": f.name, "findings": [], "visual": None, "error": str(e)}


async def files_or_error(request: Request, cfg: ServeConfig):
    """(uploads, None), or (None, the error response: 413 over a limit, 400 for none)."""
    try:
        files = await uploads(request, cfg)
    except TooLarge as e:
        return None, JSONResponse({"error": str(e)}, status_code=413)
    except Exception as e:  # a malformed form, or more files or a larger part than allowed
        status = 413 if "exceed" in str(e).lower() or "too many" in str(e).lower() else 400
        return None, JSONResponse({"error": f"the upload could not be read: {e}"}, status_code=status)
    if not files:
        return None, JSONResponse({"error": "no files: send images in the multipart field 'files'"}, status_code=400)
    return files, None


def strip_response(geo: Geolocator, f: Upload) -> Response:
    """The stripped file, or 422 with why it could not be stripped."""
    try:
        stripped = strip_bytes(f.data, set(KEEP))
        _, left = audit_bytes(stripped.data, f.name, geo.max_pixels)
        if left:
            raise StripError(f"the stripped copy still shows {', '.join(x['field'] for x in left)}")
    except (StripError, AuditError, FormatError, ExifError, ValueError) as e:
        message = str(e) if str(e).startswith(f.name) else f"{f.name}: {e}"
        return JSONResponse({"input": f.name, "error": message}, status_code=422)
    headers = {
        "Content-Disposition": f'attachment; filename="stripped-{f.name}"',
        "X-Roost-Removed": ", ".join(stripped.removed) or "nothing",
    }
    return Response(stripped.data, media_type="application/octet-stream", headers=headers)


def build_app(geo: Geolocator, cfg: ServeConfig) -> Starlette:
    pages = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True)
    countries = json.dumps(countries_geojson(geo, cfg.simplify_deg), separators=(",", ":"))
    bundle = bundle_id(geo.manifest)
    champion = Paths.from_env().champion  # /api/health says whether the page serves the promoted bundle
    lock = asyncio.Lock()  # one model: requests take turns on it (torch runs its own threads)

    async def page(request: Request) -> HTMLResponse:
        html = pages.get_template("index.html").render(domain=geo.image_domain, photos=geo.image_domain == "photos")
        return HTMLResponse(html)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "bundle": bundle,
                "bundle_path": str(geo.folder),
                "champion": geo.folder.resolve() == champion.resolve(),
                "schema_version": geo.manifest["schema_version"],
                "roost_version": geo.manifest.get("roost_version"),
                "image_domain": geo.image_domain,
            }
        )

    async def countries_route(request: Request) -> Response:
        return Response(countries, media_type="application/geo+json")

    async def predict(request: Request) -> JSONResponse:
        files, error = await files_or_error(request, cfg)
        if error:
            return error
        group = request.query_params.get("group") in ("1", "true")
        async with lock:
            results = await asyncio.to_thread(predict_json, geo, files, group)
        return JSONResponse(results)

    async def audit(request: Request) -> JSONResponse:
        files, error = await files_or_error(request, cfg)
        return error or JSONResponse([audit_json(geo, f) for f in files])

    async def strip(request: Request) -> Response:
        files, error = await files_or_error(request, cfg)
        if error:
            return error
        return strip_response(geo, files[0])

    async def explain_route(request: Request) -> Response:
        files, error = await files_or_error(request, cfg)
        if error:
            return error
        try:
            image = load_image(files[0].data, geo.max_pixels)
        except ImageRejected as e:
            return JSONResponse({"input": files[0].name, "error": f"{files[0].name}: {e}"}, status_code=422)
        async with lock:
            png = await asyncio.to_thread(_overlay, geo, image)
        return Response(png, media_type="image/png")

    routes = [
        Route("/", page),
        Route("/api/health", health),
        Route("/api/countries", countries_route),
        Route("/api/predict", predict, methods=["POST"]),
        Route("/api/audit", audit, methods=["POST"]),
        Route("/api/strip", strip, methods=["POST"]),
        Route("/api/explain", explain_route, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes)


def _overlay(geo: Geolocator, image: np.ndarray) -> bytes:
    heat = explain(geo.model, geo.spec, image)
    shown = preprocess([image], geo.spec)[0].permute(1, 2, 0).numpy() * geo.spec.image_std + geo.spec.image_mean
    return explain_png((shown.clip(0, 1) * 255).astype("uint8"), heat)
