"""A local Recombee API emulator for tests, benchmarks and ``recombee-cli sandbox``.

It serves the endpoints the CLI uses, as Recombee's API reference documents them, on 127.0.0.1 and
keeps what it was told in SQLite, so a test can look at the result. Behaviour follows the
documentation; where the documentation is silent the choice is written down here:

Auth
  * HMAC over the raw request target minus the trailing ``&hmac_sign=<hex>`` (see signing.verify);
    ``hmac_timestamp`` may be anywhere in the query. Bad or missing signature -> 401
    ``Invalid HMAC signature``; ``|server time - hmac_timestamp| > clock_skew_limit`` -> 401
    ``Token has expired (...)``.
  * A database id other than ours -> 401 ``Unknown database '<id>'`` (each database has its own
    token, so the server cannot authenticate a request for a database it does not know). A target
    with no database segment at all (``/``) -> 404.
  * ``emu.reject_all_auth = True`` answers every call 401; ``emu.clock_offset`` shifts server time,
    which every reply's ``Date`` header tells (as a real server's does).

Requests (single, and inside a Batch)
  * POST /{detailviews,purchases,cartadditions,bookmarks,ratings,viewportions}/   -> 200 "ok"
  * DELETE on the same six paths (Recombee has all six deletes)                     -> 200 "ok"
  * PUT /users/{id} (AddUser 201, 409 if present), DELETE /users/{id}[/] (200, cascades),
    POST /users/{id} (SetUserValues 200), PUT /users/{target}/merge/{source} (201);
    the same for items: PUT/DELETE/POST /items/{id} (AddItem, DeleteItem, SetItemValues)
  * Properties: PUT /{users,items}/properties/{name} with ``type`` (201; 409 if present; 400 for
    a type other than int, double, string, boolean, timestamp, set, image, imageList, a name not
    matching ``^[a-zA-Z0-9_\\-:]+$``, longer than 63, or reserved: id, userid/itemid, any case),
    GET (``{"name", "type"}``, 404), DELETE (200, its values go too), GET .../properties/list/.
  * Reading back: GET /users/{id} and /items/{id} (every property, null when unset),
    GET /users/list/ and /items/list/ (``count``, ``offset``, ``returnProperties``,
    ``includedProperties``; ``filter`` is 400: no ReQL here), GET /users/{id}/{kind}/ and
    /items/{id}/{kind}/ for the six interaction kinds (oldest first; Recombee's field names).
  * POST /batch/ (not allowed inside a batch: a nested batch is an unknown URL).
  * Trailing slash optional on every path. Another method on a known path: 405 (single) and an
    unknown URL (whole-batch 404) inside a batch.
  * Params: query string (values are text: numbers and booleans are parsed from it; cascadeCreate
    accepts True/true/False/false) merged with the JSON body (single) or ``params`` (batch); JSON
    wins on a clash. Inside a batch the ``path`` may carry a query (Segment's DELETE style) and
    ``params`` may be ``{}`` or missing (SDK style puts everything in ``params``).
  * Unknown parameter names -> 400 (strict, so a misspelt field in the CLI shows up in tests).
  * Timestamps: a JSON number >= 0, a numeric string, or an ISO-8601 string (naive = UTC),
    normalised to float epoch seconds; ``1704164645``, ``1704164645.0`` and
    ``"2024-01-02T03:04:05Z"`` are the same timestamp. Missing timestamp = the server's "now" (so a
    replay without timestamps creates a second interaction, exactly the danger the docs describe).
  * 409 on an exact duplicate (userId, itemId, timestamp) per interaction type (float equality).
  * View portions: one row per (userId, itemId, sessionId) (missing sessionId = the null session).
    If a row exists: 409 when its timestamp >= the new one or its portion > the new one, else it is
    updated (timeSpent keeps the old value when not sent). DeleteViewPortion without sessionId
    deletes the null-session row.
  * Deletes: 404 when the user or item is unknown; with timestamp deletes that exact interaction,
    without it every interaction of the pair of that type; 404 when nothing was deleted.
  * MergeUsers: 400 when target == source; interactions of source move to target; on a clash
    (same unique key already on target) target's row is kept and source's dropped; then source is
    deleted (a value the target has already is kept). Set{User,Item}Values: every property must
    exist (404 ``... property 'x' not found``) and every value fit its type (400), checked before
    anything is written; stored as typed JSON: int, double (float), timestamp (epoch seconds, from
    a number or ISO-8601), set (sorted, distinct), null (unset).
  * Error bodies: ``{"statusCode": code, "error": message}`` everywhere.

Batch: 400 for invalid JSON / wrong structure / Content-Type not application/json, 413 above
10,000 requests, 404 (nothing executed) if any request has an unknown URL or method, else 200 and
one ``{"code", "json"}`` per request, executed in order, not atomic. ``{"requests": []}`` -> 200 ``[]``.

Faults (``Faults``; ``emu.faults = Faults(...)`` at runtime reseeds the RNG) apply only to calls
that passed authentication (a 401 is never masked). Per call, one draw picks at most one of
drop_before / 500 / 503 / 429 (nothing executed); otherwise the call executes, and then ``p_slow``
delays the reply by ``slow_seconds`` and ``p_drop`` sends half of the reply's head and closes the
connection: the work is done but the client sees a broken connection. Inside a batch ``p_sub_5xx``
answers a request 500 or 503 without executing it, ``p_sub_400`` 400 (a refusal no retry
changes). ``limit`` caps the number of injected faults.
After execution too, ``p_trickle`` sends the whole reply, head included, one byte every
``trickle_seconds`` (a server that never times out a per-read timeout), and ``p_odd`` (Batch calls
only) answers 200 with a body that is not a proper Batch answer, of the kind ``odd`` names (see
``ODD_ANSWERS``).
"""

from recombee_cli.recombee.emulator.faults import ODD_ANSWERS, Faults
from recombee_cli.recombee.emulator.operations import resolve, run
from recombee_cli.recombee.emulator.params import ApiError, parse_timestamp
from recombee_cli.recombee.emulator.server import Emulator, Stats
from recombee_cli.recombee.emulator.store import KINDS
from recombee_cli.recombee.service import MAX_BATCH

__all__ = ["Emulator", "Faults", "Stats", "ApiError", "MAX_BATCH", "ODD_ANSWERS", "KINDS", "parse_timestamp",
           "resolve", "run"]
