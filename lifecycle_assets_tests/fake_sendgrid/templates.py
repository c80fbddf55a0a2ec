"""Transactional templates and their versions (the letters' dynamic templates live here)."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from .api import ApiError, ApiRequest, Response, now_template_time, paginate, query_value


class TemplatesApi:
    """/v3/templates and their versions; `templates()` is what a test reads back."""

    _lock: threading.RLock
    base_url: str

    def _init_templates(self) -> None:
        self._templates: dict[str, dict[str, Any]] = {}

    def _templates_routes(self) -> dict:
        return {
            ("GET", "/v3/templates"): self._list_templates,
            ("POST", "/v3/templates"): self._create_template,
            ("GET", "/v3/templates/{template_id}"): self._get_template,
            ("POST", "/v3/templates/{template_id}/versions"): self._create_version,
            ("GET", "/v3/templates/{template_id}/versions/{version_id}"): self._get_version,
            ("PATCH", "/v3/templates/{template_id}/versions/{version_id}"): self._update_version,
            ("POST", "/v3/templates/{template_id}/versions/{version_id}/activate"): self._activate_version,
        }

    def templates(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {
                template["name"]: {
                    "id": template["id"],
                    "generation": template["generation"],
                    "versions": [
                        {
                            "id": version["id"],
                            "name": version["name"],
                            "subject": version["subject"],
                            "html_content": version.get("html_content", ""),
                            "plain_content": version.get("plain_content", ""),
                            "active": version["active"] == 1,
                        }
                        for version in template["versions"]
                    ],
                }
                for template in self._templates.values()
            }

    def _existing_template(self, template_id: str) -> dict[str, Any]:
        template = self._templates.get(template_id)
        if template is None:
            raise ApiError(404, "template not found", "template_id")
        return template

    def _existing_version(self, request: ApiRequest) -> tuple[dict[str, Any], dict[str, Any]]:
        template = self._existing_template(request.path_params["template_id"])
        version_id = request.path_params["version_id"]
        version = next((v for v in template["versions"] if v["id"] == version_id), None)
        if version is None:
            raise ApiError(404, "version not found", "version_id")
        return template, version

    @staticmethod
    def _template_payload(template: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": template["id"],
            "name": template["name"],
            "generation": template["generation"],
            "updated_at": template["updated_at"],
            "versions": [{k: v for k, v in version.items() if k not in ("html_content", "plain_content")} for version in template["versions"]],
        }

    def _list_templates(self, request: ApiRequest) -> Response:
        wanted = set((query_value(request, "generations") or "legacy").split(","))
        matching = [t for t in self._templates.values() if t["generation"] in wanted]
        page, metadata = paginate(request, matching, 100, self.base_url)
        return Response(200, {"result": [self._template_payload(t) for t in page], "_metadata": metadata})

    def _create_template(self, request: ApiRequest) -> Response:
        generation = request.body.get("generation", "legacy")
        template_id = f"d-{uuid.uuid4().hex}" if generation == "dynamic" else str(uuid.uuid4())
        self._templates[template_id] = {
            "id": template_id,
            "name": request.body["name"],
            "generation": generation,
            "updated_at": now_template_time(),
            "versions": [],
        }
        return Response(201, self._template_payload(self._templates[template_id]))

    def _get_template(self, request: ApiRequest) -> Response:
        return Response(200, self._template_payload(self._existing_template(request.path_params["template_id"])))

    def _create_version(self, request: ApiRequest) -> Response:
        template = self._existing_template(request.path_params["template_id"])
        body = request.body
        active = 1 if not template["versions"] else body.get("active", 0)
        version = {
            "id": str(uuid.uuid4()),
            "template_id": template["id"],
            "active": active,
            "name": body["name"],
            "subject": body["subject"],
            "html_content": body.get("html_content", ""),
            "plain_content": body.get("plain_content", ""),
            "generate_plain_content": body.get("generate_plain_content", True),
            "editor": body.get("editor", "code"),
            "updated_at": now_template_time(),
        }
        if "test_data" in body:
            version["test_data"] = body["test_data"]
        if active == 1:
            for other in template["versions"]:
                other["active"] = 0
        template["versions"].append(version)
        template["updated_at"] = version["updated_at"]
        return Response(201, dict(version))

    def _get_version(self, request: ApiRequest) -> Response:
        return Response(200, dict(self._existing_version(request)[1]))

    def _update_version(self, request: ApiRequest) -> Response:
        template, version = self._existing_version(request)
        for name in ("name", "subject", "html_content", "plain_content", "generate_plain_content", "editor", "test_data"):
            if name in request.body:
                version[name] = request.body[name]
        if request.body.get("active") == 1:
            for other in template["versions"]:
                other["active"] = 0
            version["active"] = 1
        version["updated_at"] = now_template_time()
        return Response(200, dict(version))

    def _activate_version(self, request: ApiRequest) -> Response:
        template, version = self._existing_version(request)
        for other in template["versions"]:
            other["active"] = 0
        version["active"] = 1
        version["updated_at"] = now_template_time()
        return Response(200, dict(version))
