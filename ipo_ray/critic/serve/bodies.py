"""Reading a request: bearer token, body size, JSON or multipart form, into a validated model.

Both encodings go through the same pydantic model, so an invalid field is a 422 either way; a body
that is not JSON (or not a well-formed form) is a 422 too, naming the problem.
"""

import hmac
import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from ipo_ray.critic.serve.inputs import InputError, VideoLimits, check_size

M = TypeVar("M", bound=BaseModel)
# Room in a multipart body for the text fields and part headers around the videos.
_FORM_OVERHEAD = 1024 * 1024
_MAX_FIELD_BYTES = 64 * 1024


def check_token(authorization: str | None, token: str | None) -> None:
    """401 unless auth is off (`token` None) or the header is ``Bearer <token>``.

    The comparison takes the same time whatever the mismatch, so timing does not leak the token.
    """
    if token is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise InputError(401, "missing or wrong bearer token (send 'Authorization: Bearer <token>')")


async def read_body(
    request: Request, model: type[M], file_fields: tuple[str, ...], limits: VideoLimits
) -> tuple[M, dict[str, UploadFile]]:
    """The request's fields validated by `model`, and its uploaded files by field name.

    Args:
        request: The HTTP request (JSON or multipart/form-data).
        model: The pydantic model of the text fields.
        file_fields: Names under which files may be uploaded (each at most once).
        limits: Size limit per video; the whole body may hold one per file field.

    Raises:
        InputError: 413 body too large, 415 other content types, 422 malformed or invalid.
    """
    length = request.headers.get("content-length")
    if length is not None and length.isdigit():
        body_limit = VideoLimits(limits.max_bytes * len(file_fields) + _FORM_OVERHEAD, 0, 0)
        check_size(int(length), body_limit, "request body")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    uploads: dict[str, UploadFile] = {}
    if content_type == "application/json":
        data = _json_object(await request.body())
    elif content_type == "multipart/form-data":
        data = {}
        for key, value in (await _form(request, len(file_fields))).multi_items():
            if isinstance(value, UploadFile):
                if key not in file_fields or key in uploads:
                    raise InputError(422, f"unexpected file field {key!r}; files go in {list(file_fields)}")
                uploads[key] = value
            elif key == "dimensions":  # a list: one form field per dimension
                data.setdefault(key, []).append(value)
            elif key in data:
                raise InputError(422, f"form field {key!r} given more than once")
            else:
                data[key] = value
    else:
        raise InputError(
            415, f"content type {content_type or 'none'!r}: send application/json or multipart/form-data"
        )
    try:
        return model.model_validate(data), uploads
    except ValidationError as error:
        raise InputError(
            422, error.errors(include_url=False, include_context=False, include_input=False)
        ) from None


def _json_object(raw: bytes) -> dict[str, object]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise InputError(422, f"malformed JSON body: {error}") from None
    if not isinstance(data, dict):
        raise InputError(422, f"JSON body must be an object, got {type(data).__name__}")
    return data


async def _form(request: Request, max_files: int):  # noqa: ANN202 - starlette's FormData
    try:
        return await request.form(max_files=max_files, max_fields=16, max_part_size=_MAX_FIELD_BYTES)
    except HTTPException as error:  # starlette's answer to a malformed multipart body
        raise InputError(422, f"malformed multipart body: {error.detail}") from None
    except (ValueError, KeyError, UnicodeDecodeError) as error:
        raise InputError(422, f"malformed multipart body: {error}") from None
