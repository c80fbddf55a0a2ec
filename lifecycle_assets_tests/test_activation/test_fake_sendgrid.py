"""The fake SendGrid behaves like SendGrid towards the official client: it rejects what SendGrid
documents as invalid, keeps the state a push creates, and fails the ways a real network does.

Every test drives the real `sendgrid` client over HTTP on 127.0.0.1; only its host differs.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.request

import pytest
import sendgrid
from python_http_client import exceptions as http_errors

from lifecycle_assets_tests.fake_sendgrid import FakeSendGrid, Fault

SENDER = {"email": "letters@shop.example", "name": "Shop"}


@pytest.fixture
def fake():
    with FakeSendGrid(api_key="SG.test-key") as running:
        yield running


@pytest.fixture
def client(fake):
    return sendgrid.SendGridAPIClient(api_key=fake.api_key, host=fake.base_url).client


def _errors(error: http_errors.HTTPError) -> list[dict]:
    return json.loads(error.body)["errors"]


def _dynamic_template(client, name: str = "welcome_letter") -> str:
    template = client.templates.post(request_body={"name": name, "generation": "dynamic"}).to_dict
    client.templates._(template["id"]).versions.post(
        request_body={"name": "v1", "subject": "{{subject}}", "html_content": "<p>Hello {{first_name}}</p>"}
    )
    return template["id"]


def _letters(template_id: str, count: int, **overrides) -> dict:
    body = {
        "from": SENDER,
        "template_id": template_id,
        "personalizations": [
            {
                "to": [{"email": f"customer{i}@example.com"}],
                "dynamic_template_data": {"first_name": f"Customer {i}", "stage": "new"},
                "custom_args": {"letter_id": f"letter-{i}"},
            }
            for i in range(count)
        ],
        "categories": ["lifecycle"],
        "asm": {"group_id": 42},
    }
    body.update(overrides)
    return body


# --- authentication -----------------------------------------------------------------------------


@pytest.mark.parametrize("api_key", ["SG.wrong-key", ""], ids=["wrong_key", "empty_key"])
def test_wrong_api_key_is_refused_with_401_in_sendgrid_error_shape(fake, api_key):
    wrong = sendgrid.SendGridAPIClient(api_key=api_key, host=fake.base_url).client
    with pytest.raises(http_errors.UnauthorizedError) as raised:
        wrong.marketing.lists.get()
    errors = _errors(raised.value)
    assert errors[0]["field"] is None and errors[0]["message"]
    assert fake.requests[-1].status == 401


def test_key_without_scopes_is_refused_with_403():
    with FakeSendGrid(forbidden=True) as fake:
        client = sendgrid.SendGridAPIClient(api_key=fake.api_key, host=fake.base_url).client
        with pytest.raises(http_errors.ForbiddenError):
            client.mail.send.post(request_body={"from": SENDER})


# --- mail send ------------------------------------------------------------------------------------


def test_mail_send_is_accepted_and_every_letter_recorded(fake, client):
    template_id = _dynamic_template(client)
    fake.add_suppression("group", "customer1@example.com", group_id=42)

    response = client.mail.send.post(request_body=_letters(template_id, 3))

    assert response.status_code == 202
    assert response.body == b""
    message_id = response.headers["X-Message-Id"]
    sent = fake.sent_messages()
    assert [letter["to"] for letter in sent] == [f"customer{i}@example.com" for i in range(3)]
    assert {letter["x_message_id"] for letter in sent} == {message_id}
    assert sent[0]["template_id"] == template_id
    assert sent[0]["dynamic_template_data"] == {"first_name": "Customer 0", "stage": "new"}
    assert sent[0]["custom_args"] == {"letter_id": "letter-0"}
    assert sent[0]["categories"] == ["lifecycle"]
    assert sent[0]["asm"] == {"group_id": 42}
    assert sent[0]["from"] == SENDER
    assert [letter["suppressed"] for letter in sent] == [[], ["group"], []]
    assert fake.requests[sent[0]["request_index"]].path == "/v3/mail/send"


def test_each_mail_send_gets_its_own_message_id(fake, client):
    template_id = _dynamic_template(client)
    first = client.mail.send.post(request_body=_letters(template_id, 1)).headers["X-Message-Id"]
    second = client.mail.send.post(request_body=_letters(template_id, 1)).headers["X-Message-Id"]
    assert first != second


def _without(key: str):
    return lambda body: {k: v for k, v in body.items() if k != key}


def _set(key: str, value):
    return lambda body: {**body, key: value}


def _first_personalization(**changes):
    def change(body):
        personalizations = [dict(body["personalizations"][0], **changes), *body["personalizations"][1:]]
        return {**body, "personalizations": personalizations}

    return change


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (_without("personalizations"), "personalizations"),
        (_set("personalizations", []), "personalizations"),
        (lambda body: _letters(body["template_id"], 1001), "personalizations"),
        (_without("from"), "from"),
        (_set("from", {"email": "not-an-address"}), "from.email"),
        (_set("template_id", "d-00000000000000000000000000000000"), "template_id"),
        (_set("template_id", "welcome_letter"), "template_id"),
        (_first_personalization(to=[{"email": "nobody-at-example.com"}]), "personalizations[0].to[0].email"),
        (_first_personalization(to=[]), "personalizations.0.to"),
        (_first_personalization(custom_args={"letter_id": 17}), "personalizations[0].custom_args.letter_id"),
        (_set("categories", [f"category-{i}" for i in range(11)]), "categories"),
        (_set("send_at", int(time.time()) + 4 * 24 * 3600), "send_at"),
    ],
    ids=[
        "no_personalizations",
        "empty_personalizations",
        "1001_personalizations",
        "no_from",
        "invalid_from_address",
        "unknown_template",
        "template_id_not_a_guid",
        "invalid_recipient",
        "personalization_without_to",
        "custom_arg_not_a_string",
        "eleven_categories",
        "scheduled_beyond_72_hours",
    ],
)
def test_mail_send_rejects_what_sendgrid_rejects(fake, client, change, field):
    template_id = _dynamic_template(client)
    body = change(_letters(template_id, 2))

    with pytest.raises(http_errors.BadRequestsError) as raised:
        client.mail.send.post(request_body=body)

    assert field in [error["field"] for error in _errors(raised.value)]
    assert fake.sent_messages() == []


def test_mail_send_rejection_does_not_echo_the_customer_address(client):
    template_id = _dynamic_template(client)
    body = _first_personalization(to=[{"email": "private.person-example.com"}])(_letters(template_id, 1))
    with pytest.raises(http_errors.BadRequestsError) as raised:
        client.mail.send.post(request_body=body)
    assert "private.person" not in raised.value.body.decode()


def test_mail_without_template_needs_content_and_subject(fake, client):
    body = {"from": SENDER, "personalizations": [{"to": [{"email": "customer@example.com"}]}]}
    with pytest.raises(http_errors.BadRequestsError) as raised:
        client.mail.send.post(request_body=body)
    assert _errors(raised.value)[0]["field"] == "content"

    body["content"] = [{"type": "text/plain", "value": "Hello"}]
    with pytest.raises(http_errors.BadRequestsError) as raised:
        client.mail.send.post(request_body=body)
    assert _errors(raised.value)[0]["field"] == "subject"

    body["subject"] = "Hello"
    assert client.mail.send.post(request_body=body).status_code == 202
    assert [letter["to"] for letter in fake.sent_messages()] == ["customer@example.com"]


def test_a_full_batch_of_1000_letters_is_accepted(fake, client):
    template_id = _dynamic_template(client)
    response = client.mail.send.post(request_body=_letters(template_id, 1000))
    assert response.status_code == 202
    assert len({letter["to"] for letter in fake.sent_messages()}) == 1000


def test_concurrent_mail_sends_are_all_recorded(fake):
    setup = sendgrid.SendGridAPIClient(api_key=fake.api_key, host=fake.base_url).client
    template_id = _dynamic_template(setup)
    message_ids: list[str] = []

    def send(batch: int) -> None:
        # The official client keeps headers on shared state, so one client per thread.
        client = sendgrid.SendGridAPIClient(api_key=fake.api_key, host=fake.base_url).client
        body = _letters(template_id, 50)
        for personalization in body["personalizations"]:
            personalization["to"][0]["email"] = personalization["to"][0]["email"].replace("@", f".{batch}@")
        message_ids.append(client.mail.send.post(request_body=body).headers["X-Message-Id"])

    threads = [threading.Thread(target=send, args=(batch,)) for batch in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(message_ids)) == 8
    assert len({letter["to"] for letter in fake.sent_messages()}) == 400
    assert fake.request_count("POST", "/v3/mail/send") == 8


# --- contacts, lists, custom fields ----------------------------------------------------------------


def _list_id(client, name: str = "stage_new") -> str:
    return client.marketing.lists.post(request_body={"name": name}).to_dict["id"]


def test_contacts_upsert_fills_lists_and_custom_fields_case_insensitively(fake, client):
    list_id = _list_id(client)
    field_id = client.marketing.field_definitions.post(request_body={"name": "stage", "field_type": "Text"}).to_dict["id"]
    score_id = client.marketing.field_definitions.post(request_body={"name": "rfm_score", "field_type": "Number"}).to_dict["id"]

    response = client.marketing.contacts.put(
        request_body={
            "list_ids": [list_id],
            "contacts": [
                {"email": "Anna@Example.com", "first_name": "Anna", "custom_fields": {field_id: "new"}},
                {"email": "ben@example.com", "custom_fields": {score_id: 311}},
            ],
        }
    )
    assert response.status_code == 202 and response.to_dict["job_id"]
    client.marketing.contacts.put(
        request_body={"contacts": [{"email": "ANNA@example.com", "custom_fields": {field_id: "active"}}]}
    )

    assert fake.list_members("stage_new") == {"anna@example.com", "ben@example.com"}
    anna = fake.contacts()["anna@example.com"]
    assert anna["first_name"] == "Anna"
    assert anna["custom_fields"] == {"stage": "active"}
    assert anna["list_ids"] == [list_id]
    assert fake.contacts()["ben@example.com"]["custom_fields"] == {"rfm_score": 311}


def test_import_job_is_pending_on_first_poll_then_completed_with_counts():
    with FakeSendGrid(import_pending_polls=1) as fake:
        client = sendgrid.SendGridAPIClient(api_key=fake.api_key, host=fake.base_url).client
        contacts = [{"email": f"c{i}@example.com"} for i in range(3)]
        client.marketing.contacts.put(request_body={"contacts": contacts[:1]})
        job_id = client.marketing.contacts.put(request_body={"contacts": contacts}).to_dict["job_id"]

        first = client.marketing.contacts.imports._(job_id).get().to_dict
        second = client.marketing.contacts.imports._(job_id).get().to_dict

        assert first["status"] == "pending"
        assert second["status"] == "completed"
        assert second["results"] == {"requested_count": 3, "created_count": 2, "updated_count": 1, "errored_count": 0}
        assert fake.catalog.response_problems("GET", "/v3/marketing/contacts/imports/{id}", 200, second) == []
        with pytest.raises(http_errors.NotFoundError):
            client.marketing.contacts.imports._("no-such-job").get()


def test_rejected_contacts_fail_inside_the_import_job_with_an_error_file(fake, client):
    list_id = client.marketing.lists.post(request_body={"name": "newsletter"}).to_dict["id"]
    fake.reject_contacts_on_import(["Bad@Example.com"], message="email domain does not accept mail")
    contacts = [{"email": "anna@example.com"}, {"email": "bad@example.com"}, {"email": "ben@example.com"}]

    reply = client.marketing.contacts.put(request_body={"list_ids": [list_id], "contacts": contacts})
    job = client.marketing.contacts.imports._(reply.to_dict["job_id"]).get().to_dict

    assert reply.status_code == 202
    assert job["status"] == "errored"
    assert job["results"]["requested_count"] == 3
    assert job["results"]["created_count"] == 2
    assert job["results"]["errored_count"] == 1
    assert fake.catalog.response_problems("GET", "/v3/marketing/contacts/imports/{id}", 200, job) == []
    assert fake.list_members("newsletter") == {"anna@example.com", "ben@example.com"}
    assert "bad@example.com" not in fake.contacts()
    # The error file is a plain download: no API key, as SendGrid's pre-signed URL.
    with urllib.request.urlopen(job["results"]["errors_url"], timeout=5) as download:
        assert download.read().decode() == "email,error\nbad@example.com,email domain does not accept mail\n"
    assert not any(record.path.startswith("/_fake/") for record in fake.requests)

    fake.clear_import_rejections()
    again = client.marketing.contacts.put(request_body={"list_ids": [list_id], "contacts": contacts[1:2]})
    retried = client.marketing.contacts.imports._(again.to_dict["job_id"]).get().to_dict

    assert retried["status"] == "completed"
    assert retried["results"]["errored_count"] == 0 and "errors_url" not in retried["results"]
    assert fake.list_members("newsletter") == {"anna@example.com", "bad@example.com", "ben@example.com"}


@pytest.mark.parametrize(
    ("contacts", "field"),
    [
        ([{"email": 12345}], "contacts[0].email"),
        ([{"email": "customer-at-example.com"}], "contacts[0].email"),
        ([{"first_name": "Anna"}], "contacts[0]"),
        ([{"email": "anna@example.com", "first_name": "A" * 51}], "contacts[0].first_name"),
        ([{"email": f"c{i}@example.com"} for i in range(30_001)], "contacts"),
        ([], "contacts"),
        ([{"email": "anna@example.com", "custom_fields": {"stage": "new"}}], "contacts[0].custom_fields.stage"),
    ],
    ids=[
        "email_not_a_string",
        "email_not_an_address",
        "no_identifier",
        "first_name_too_long",
        "30001_contacts",
        "no_contacts",
        "custom_field_by_name_not_id",
    ],
)
def test_contacts_upsert_rejects_what_sendgrid_rejects(fake, client, contacts, field):
    client.marketing.field_definitions.post(request_body={"name": "stage", "field_type": "Text"})
    with pytest.raises(http_errors.BadRequestsError) as raised:
        client.marketing.contacts.put(request_body={"contacts": contacts})
    assert field in [error["field"] for error in _errors(raised.value)]
    assert fake.contacts() == {}


def test_contacts_upsert_rejects_unknown_list_and_wrong_custom_field_type(fake, client):
    number_id = client.marketing.field_definitions.post(request_body={"name": "orders", "field_type": "Number"}).to_dict["id"]
    with pytest.raises(http_errors.NotFoundError) as raised:
        client.marketing.contacts.put(
            request_body={"list_ids": ["0b7c7f2e-9f0e-4a8a-9d43-2d3c7a1e5b11"], "contacts": [{"email": "a@example.com"}]}
        )
    assert _errors(raised.value)[0]["field"] == "list_ids"
    with pytest.raises(http_errors.BadRequestsError):
        client.marketing.contacts.put(request_body={"contacts": [{"email": "a@example.com", "custom_fields": {number_id: "3"}}]})
    assert fake.contacts() == {}


def test_contacts_body_over_6mb_is_rejected(fake, client):
    padding = "x" * 100
    contacts = [{"email": f"customer{i}@example.com", "address_line_1": padding, "address_line_2": padding} for i in range(29_000)]
    with pytest.raises(http_errors.BadRequestsError) as raised:
        client.marketing.contacts.put(request_body={"contacts": contacts})
    assert "6MB" in _errors(raised.value)[0]["message"]
    assert fake.contacts() == {}


def test_search_by_email_returns_found_contacts_and_404_when_none(fake, client):
    client.marketing.contacts.put(request_body={"contacts": [{"email": "anna@example.com", "first_name": "Anna"}]})
    found = client.marketing.contacts.search.emails.post(request_body={"emails": ["ANNA@example.com", "zoe@example.com"]}).to_dict
    assert found["result"]["anna@example.com"]["contact"]["first_name"] == "Anna"
    assert found["result"]["zoe@example.com"] == {"error": "contact not found"}
    assert fake.catalog.response_problems("POST", "/v3/marketing/contacts/search/emails", 200, found) == []
    with pytest.raises(http_errors.NotFoundError):
        client.marketing.contacts.search.emails.post(request_body={"emails": ["zoe@example.com"]})


def test_lists_paginate_with_page_token(fake, client):
    names = [f"segment_{i}" for i in range(5)]
    for name in names:
        _list_id(client, name)
    seen: list[str] = []
    query = {"page_size": 2}
    pages = 0
    while True:
        page = client.marketing.lists.get(query_params=query).to_dict
        assert fake.catalog.response_problems("GET", "/v3/marketing/lists", 200, page) == []
        assert page["_metadata"]["count"] == 5
        seen += [entry["name"] for entry in page["result"]]
        pages += 1
        if "next" not in page["_metadata"]:
            break
        query = {"page_size": 2, "page_token": page["_metadata"]["next"].split("page_token=")[1]}
    assert seen == names
    assert pages == 3
    assert fake.lists().keys() == set(names)


def test_list_queries_are_validated_against_the_spec(client):
    with pytest.raises(http_errors.BadRequestsError) as raised:
        client.marketing.lists.get(query_params={"page_size": 5000})
    assert _errors(raised.value)[0]["field"] == "page_size"


def test_duplicate_list_name_is_rejected(client):
    _list_id(client, "stage_new")
    with pytest.raises(http_errors.BadRequestsError):
        _list_id(client, "stage_new")


def test_removing_contacts_from_a_list_keeps_the_contacts(fake, client):
    list_id = _list_id(client)
    client.marketing.contacts.put(request_body={"list_ids": [list_id], "contacts": [{"email": "a@example.com"}, {"email": "b@example.com"}]})
    contact_id = fake.contacts()["a@example.com"]["id"]

    response = client.marketing.lists._(list_id).contacts.delete(query_params={"contact_ids": contact_id})

    assert response.status_code == 202 and response.to_dict["job_id"]
    assert fake.list_members("stage_new") == {"b@example.com"}
    assert "a@example.com" in fake.contacts()
    assert client.marketing.lists._(list_id).get().to_dict["contact_count"] == 1
    with pytest.raises(http_errors.NotFoundError):
        client.marketing.lists._(list_id).contacts.delete(query_params={"contact_ids": "no-such-contact"})


def test_field_definitions_follow_sendgrid_naming_rules(fake, client):
    created = client.marketing.field_definitions.post(request_body={"name": "lifecycle_stage", "field_type": "Text"}).to_dict
    assert created["id"].endswith("_T")
    for body in (
        {"name": "Lifecycle_Stage", "field_type": "Text"},  # case-insensitively unique
        {"name": "first_name", "field_type": "Text"},  # reserved
        {"name": "1st_order", "field_type": "Date"},  # starts with a digit
        {"name": "points", "field_type": "Integer"},  # not a documented type
    ):
        with pytest.raises(http_errors.BadRequestsError):
            client.marketing.field_definitions.post(request_body=body)
    listed = client.marketing.field_definitions.get().to_dict
    assert fake.catalog.response_problems("GET", "/v3/marketing/field_definitions", 200, listed) == []
    assert [f["name"] for f in listed["custom_fields"]] == ["lifecycle_stage"]
    assert fake.field_definitions() == {"lifecycle_stage": {"id": created["id"], "field_type": "Text"}}


# --- suppressions --------------------------------------------------------------------------------

SUPPRESSION_ENDPOINTS = {
    "unsubscribes": "/v3/suppression/unsubscribes",
    "bounces": "/v3/suppression/bounces",
    "spam_reports": "/v3/suppression/spam_reports",
    "invalid_emails": "/v3/suppression/invalid_emails",
    "blocks": "/v3/suppression/blocks",
}


@pytest.mark.parametrize("kind", list(SUPPRESSION_ENDPOINTS))
def test_seeded_suppressions_are_returned_in_spec_shape_with_limit_and_offset(fake, client, kind):
    for i in range(3):
        fake.add_suppression(kind, f"Blocked{i}@example.com", created=1_700_000_000 + i)
    endpoint = client.suppression._(kind)

    everything = endpoint.get().to_dict
    second = endpoint.get(query_params={"limit": 1, "offset": 1}).to_dict

    assert [entry["email"] for entry in everything] == [f"blocked{i}@example.com" for i in range(3)]
    assert [entry["email"] for entry in second] == ["blocked1@example.com"]
    assert fake.catalog.response_problems("GET", SUPPRESSION_ENDPOINTS[kind], 200, everything) == []


def test_group_suppressions_are_listed_per_group_and_overall(fake, client):
    fake.add_suppression("group", "a@example.com", group_id=42)
    fake.add_suppression("group", "b@example.com", group_id=7)

    assert client.asm.groups._(42).suppressions.get().to_dict == ["a@example.com"]
    overall = client.asm.suppressions.get().to_dict
    assert {(entry["email"], entry["group_id"]) for entry in overall} == {("a@example.com", 42), ("b@example.com", 7)}
    assert fake.catalog.response_problems("GET", "/v3/asm/suppressions", 200, overall) == []


def test_suppression_kind_is_checked_when_seeding(fake):
    with pytest.raises(ValueError):
        fake.add_suppression("complaints", "a@example.com")
    with pytest.raises(ValueError):
        fake.add_suppression("group", "a@example.com")


# --- templates -----------------------------------------------------------------------------------


def test_templates_versions_and_activation(fake, client):
    template_id = _dynamic_template(client, "winback_letter")
    second = client.templates._(template_id).versions.post(
        request_body={"name": "v2", "subject": "We miss you", "html_content": "<p>Come back</p>"}
    ).to_dict
    assert [v["active"] for v in fake.templates()["winback_letter"]["versions"]] == [True, False]

    activated = client.templates._(template_id).versions._(second["id"]).activate.post()

    assert activated.status_code == 200
    assert [v["active"] for v in fake.templates()["winback_letter"]["versions"]] == [False, True]
    listed = client.templates.get(query_params={"generations": "dynamic", "page_size": 10}).to_dict
    assert [t["id"] for t in listed["result"]] == [template_id]
    assert fake.catalog.response_problems("GET", "/v3/templates", 200, listed) == []
    assert client.templates.get(query_params={"generations": "legacy", "page_size": 10}).to_dict["result"] == []
    with pytest.raises(http_errors.BadRequestsError) as raised:
        client.templates.get(query_params={"generations": "dynamic"})
    assert _errors(raised.value)[0]["field"] == "page_size"
    with pytest.raises(http_errors.NotFoundError):
        client.templates._("d-" + "0" * 32).get()


def test_template_version_needs_name_and_subject(client):
    template_id = client.templates.post(request_body={"name": "t", "generation": "dynamic"}).to_dict["id"]
    with pytest.raises(http_errors.BadRequestsError) as raised:
        client.templates._(template_id).versions.post(request_body={"name": "v1", "html_content": "<p/>"})
    assert _errors(raised.value)[0]["field"] == "subject"


# --- routing -------------------------------------------------------------------------------------


def test_unknown_path_is_404_undocumented_method_405_and_unimplemented_501(client):
    with pytest.raises(http_errors.NotFoundError):
        client.marketing.segments.get()
    with pytest.raises(http_errors.MethodNotAllowedError):
        client.mail.send.get()
    with pytest.raises(http_errors.HTTPError) as raised:
        client.marketing.contacts.exports.get()
    assert raised.value.status_code == 501


# --- faults --------------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_reset_headers_then_recovers(fake, client):
    template_id = _dynamic_template(client)
    fake.inject(Fault(kind="rate_limit", path_prefix="/v3/mail/send", times=2, reset_in_seconds=1))

    for _ in range(2):
        with pytest.raises(http_errors.TooManyRequestsError) as raised:
            client.mail.send.post(request_body=_letters(template_id, 1))
        headers = raised.value.headers
        assert headers["X-RateLimit-Remaining"] == "0"
        assert int(headers["X-RateLimit-Limit"]) > 0
        assert time.time() - 1 <= int(headers["X-RateLimit-Reset"]) <= time.time() + 3
    assert fake.sent_messages() == []

    assert client.mail.send.post(request_body=_letters(template_id, 1)).status_code == 202
    assert [record.status for record in fake.requests[-3:]] == [429, 429, 202]


def test_server_error_is_returned_once_and_applies_nothing(fake, client):
    fake.inject(Fault(kind="server_error", path_prefix="/v3/marketing/contacts", times=1, status=503))
    with pytest.raises(http_errors.ServiceUnavailableError):
        client.marketing.contacts.put(request_body={"contacts": [{"email": "a@example.com"}]})
    assert fake.contacts() == {}
    client.marketing.contacts.put(request_body={"contacts": [{"email": "a@example.com"}]})
    assert set(fake.contacts()) == {"a@example.com"}


def test_latency_delays_only_the_matching_requests(fake, client):
    fake.inject(Fault(kind="latency", path_prefix="/v3/marketing/lists", times=1, seconds=0.3))
    started = time.monotonic()
    client.marketing.lists.get()
    assert time.monotonic() - started >= 0.3
    assert fake.requests[-1].status == 200


def _is_connection_cut(error: BaseException) -> bool:
    return isinstance(error, (urllib.error.URLError, http.client.HTTPException, ConnectionError))


def test_drop_after_body_loses_the_answer_but_the_letters_were_sent(fake, client):
    template_id = _dynamic_template(client)
    fake.inject(Fault(kind="drop_after_body", path_prefix="/v3/mail/send"))

    with pytest.raises(Exception) as raised:
        client.mail.send.post(request_body=_letters(template_id, 2))

    assert _is_connection_cut(raised.value), repr(raised.value)
    assert [letter["to"] for letter in fake.sent_messages()] == ["customer0@example.com", "customer1@example.com"]
    assert fake.requests[-1].status is None and fake.requests[-1].fault == "drop_after_body"


def test_drop_before_effect_loses_the_request(fake, client):
    template_id = _dynamic_template(client)
    fake.inject(Fault(kind="drop_before_effect", path_prefix="/v3/mail/send"))

    with pytest.raises(Exception) as raised:
        client.mail.send.post(request_body=_letters(template_id, 2))

    assert _is_connection_cut(raised.value), repr(raised.value)
    assert fake.sent_messages() == []
    assert client.mail.send.post(request_body=_letters(template_id, 2)).status_code == 202
    assert len(fake.sent_messages()) == 2


def test_faults_apply_in_order_and_reset_clears_them(fake, client):
    fake.inject(Fault(kind="server_error", path_prefix="/v3/marketing/lists"))
    fake.inject(Fault(kind="rate_limit", path_prefix="/v3/marketing/lists"))
    with pytest.raises(http_errors.InternalServerError):
        client.marketing.lists.get()
    with pytest.raises(http_errors.TooManyRequestsError):
        client.marketing.lists.get()
    fake.inject(Fault(kind="server_error", path_prefix="/v3/marketing/lists", times=5))
    fake.reset_faults()
    assert client.marketing.lists.get().status_code == 200
    with pytest.raises(ValueError):
        Fault(kind="explode")


def test_mail_built_with_the_official_helper_is_accepted(fake):
    """The helper sends message-level custom_args as an object, which the spec wrongly types as string."""
    from sendgrid.helpers.mail import Asm, CustomArg, From, GroupId, Mail, Personalization, To

    api = sendgrid.SendGridAPIClient(api_key=fake.api_key, host=fake.base_url)
    template_id = _dynamic_template(api.client)
    mail = Mail(from_email=From("letters@shop.example", "Shop"))
    mail.template_id = template_id
    personalization = Personalization()
    personalization.add_to(To("customer@example.com"))
    personalization.dynamic_template_data = {"first_name": "Anna"}
    personalization.add_custom_arg(CustomArg("letter_id", "letter-1"))
    mail.add_personalization(personalization)
    mail.asm = Asm(GroupId(42))
    mail.custom_arg = CustomArg("push_run", "run-7")

    assert api.send(mail).status_code == 202
    assert fake.sent_messages()[0]["custom_args"] == {"push_run": "run-7", "letter_id": "letter-1"}


def test_connections_are_kept_alive_between_requests(fake):
    host, port = fake.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    local_ports = set()
    for name in ("stage_new", "stage_active"):
        connection.request(
            "POST",
            "/v3/marketing/lists",
            body=json.dumps({"name": name}),
            headers={"Authorization": f"Bearer {fake.api_key}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        assert response.status == 201
        response.read()
        local_ports.add(connection.sock.getsockname()[1])
    connection.close()
    assert len(local_ports) == 1
    assert set(fake.lists()) == {"stage_new", "stage_active"}


# --- what SendGrid rejects that the push must never send (issue 8, item 8) ------------------------


def test_the_same_address_twice_in_one_mail_send_is_rejected_whole(fake, client):
    template_id = _dynamic_template(client)
    body = _letters(template_id, 3)
    body["personalizations"][2]["to"] = [{"email": "Customer0@Example.com"}]  # customer0 again, other case

    with pytest.raises(http_errors.BadRequestsError) as raised:
        client.mail.send.post(request_body=body)

    assert [error["field"] for error in _errors(raised.value)] == ["personalizations"]
    assert "customer0" not in raised.value.body.decode().lower()
    assert fake.sent_messages() == []


def _template_with_unsubscribe_link(client) -> str:
    template = client.templates.post(request_body={"name": "with_unsubscribe", "generation": "dynamic"}).to_dict
    client.templates._(template["id"]).versions.post(
        request_body={
            "name": "v1",
            "subject": "Hi",
            "html_content": '<p>Hi</p><a href="<%asm_group_unsubscribe_raw_url%>">Unsubscribe</a>',
        }
    )
    return template["id"]


def test_unsubscribe_tags_without_an_asm_group_are_rejected(fake, client):
    template_id = _template_with_unsubscribe_link(client)
    body = _letters(template_id, 2)
    del body["asm"]

    with pytest.raises(http_errors.BadRequestsError) as raised:
        client.mail.send.post(request_body=body)

    assert _errors(raised.value)[0]["field"] == "asm.group_id"
    assert fake.sent_messages() == []
    assert client.mail.send.post(request_body=_letters(template_id, 2)).status_code == 202


def test_a_mail_send_body_over_30mb_is_rejected(fake, client):
    template_id = _dynamic_template(client)
    body = _letters(template_id, 1000)
    filler = "x" * 33_000  # 1000 x 33 kB: over 30 MiB
    for personalization in body["personalizations"]:
        personalization["dynamic_template_data"]["filler"] = filler

    with pytest.raises(http_errors.HTTPError) as raised:
        client.mail.send.post(request_body=body)

    assert raised.value.status_code == 413
    assert fake.sent_messages() == []
