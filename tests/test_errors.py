"""webframe/errors.py: one error vocabulary, each class carrying its status and message."""

from __future__ import annotations

import json

import pytest
from tornado.httputil import responses

import webframe
from webframe import Application, RequestHandler, errors
from webframe.testing import WebTestCase, test_settings

CLASSES = [
    obj
    for obj in vars(errors).values()
    if isinstance(obj, type) and issubclass(obj, errors.HTTPError) and obj is not errors.HTTPError
]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_each_error_carries_its_status_and_default_message(cls: type[errors.HTTPError]) -> None:
    exc = cls()
    assert exc.status_code == cls.status
    assert exc.message == cls.default_message
    assert exc.message.endswith(".")
    assert cls.__doc__ and cls.__doc__.startswith(f"{cls.status}:")
    assert cls.__name__ in webframe.__all__


def test_a_message_and_headers_given_win() -> None:
    exc = errors.TooManyRequestsError("Slow down.", headers={"Retry-After": "3"})
    assert (exc.status_code, exc.message, exc.headers) == (429, "Slow down.", {"Retry-After": "3"})


def test_default_message_comes_from_the_classes() -> None:
    assert errors.default_message(404) == errors.NotFoundError.default_message
    assert errors.default_message(507) == errors.InsufficientStorageError.default_message
    assert errors.default_message(500) == errors.InternalServerError.default_message
    assert errors.default_message(403) == errors.ForbiddenError.default_message  # not XSRF's
    assert errors.default_message(418) is None
    assert set(errors.DEFAULT_MESSAGES) >= {400, 401, 403, 404, 405, 408, 413, 415, 429, 500}


def test_throttle_raises_the_same_class() -> None:
    from webframe import throttle

    assert throttle.TooManyRequestsError is errors.TooManyRequestsError


class Bare(RequestHandler):
    def get(self, code: str) -> None:
        self.send_error(int(code))


class BareStatusPagesTest(WebTestCase):
    def get_app(self) -> Application:
        return Application([(r"/status/(\d+)", Bare)], test_settings())

    def test_a_bare_status_shows_the_message_of_its_error_class(self) -> None:
        for cls in (errors.UnauthorizedError, errors.TooManyRequestsError,
                    errors.InsufficientStorageError, errors.NotSupportedError):
            r = self.fetch(f"/status/{cls.status}", headers={"Accept": "application/json"})
            assert r.code == cls.status
            assert json.loads(r.body)["error"]["message"] == cls.default_message

    def test_a_status_with_no_class_shows_the_reason_phrase(self) -> None:
        r = self.fetch("/status/418", headers={"Accept": "application/json"})
        assert json.loads(r.body)["error"]["message"] == responses[418]
