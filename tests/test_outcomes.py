"""What an answer means is decided in one place (outcomes.py) and read the same way by the sender,
the journal, an event's outcome and the summary's counts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from recombee_cli.outcomes import (
    NO_ANSWER,
    NOT_REPRESENTABLE,
    REFUSED,
    UNANSWERED,
    accepted,
    answered_outcome,
    recorded_code,
    refused_for_good,
    request_outcome,
    transient,
)

HTTP = st.integers(min_value=100, max_value=599)


@given(st.one_of(HTTP, st.sampled_from([NO_ANSWER, REFUSED, NOT_REPRESENTABLE])))
def test_every_answer_is_exactly_one_of_accepted_pending_refused_or_a_file_verdict(code):
    kinds = [accepted(code), transient(code), refused_for_good(code), code in (REFUSED, NOT_REPRESENTABLE),
             100 <= code < 400 and not accepted(code)]   # an HTTP answer that is no verdict (a 3xx): failed
    assert sum(kinds) == 1, (code, kinds)


@given(HTTP, st.booleans())
def test_only_a_lenient_404_is_recorded_as_nothing_left_to_do(code, lenient):
    recorded = recorded_code(code, lenient)
    assert recorded == (409 if code == 404 and lenient else code)
    assert accepted(recorded) == (accepted(code) or (code == 404 and lenient))


def test_a_request_is_counted_under_the_outcome_its_event_would_have_alone():
    for code in (200, 201, 409, 400, 404, 429, 503, NO_ANSWER, REFUSED, NOT_REPRESENTABLE):
        outcome, _, _ = answered_outcome([code], ["why"], None)
        assert request_outcome(code) == outcome, code


def test_an_event_ranks_invalid_over_failed_over_sent_over_duplicate():
    assert answered_outcome([409, 200], [None, None], None)[0] == "sent"
    assert answered_outcome([409, 409], [None, None], None)[0] == "duplicate"
    assert answered_outcome([200, 400, 503], [None, "bad", "down"], None) == \
        ("failed", "Recombee answered 400: bad", 400)
    assert answered_outcome([200, REFUSED, 400], [None, "too long", "bad"], None) == ("invalid", "too long", None)
    assert answered_outcome([200], [None], [("views", "no userId")]) == ("invalid", "mapping 'views': no userId", None)
    # requests a format cannot express: `filtered` only when nothing else of the event was written
    assert answered_outcome([NOT_REPRESENTABLE], ["no such table"], None) == ("filtered", "no such table", None)
    assert answered_outcome([NOT_REPRESENTABLE, 200], ["no such table", None], None)[0] == "sent"


def test_no_answer_is_no_http_status_in_a_failure():
    outcome, reason, status = answered_outcome([NO_ANSWER], ["cannot connect to 127.0.0.1:9: refused"], None)
    assert (outcome, reason, status) == ("failed", "cannot connect to 127.0.0.1:9: refused", None)
    assert UNANSWERED == 0 and not accepted(UNANSWERED) and not transient(UNANSWERED)
