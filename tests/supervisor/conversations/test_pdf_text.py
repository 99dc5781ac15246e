"""PDF attachments: their text, extracted on the server with pypdf; bad files are 400s."""

from __future__ import annotations

from tests.conftest import SupervisorFactory
from tests.support.tiny_pdf import tiny_pdf


def test_pdf_text_route(supervisor: SupervisorFactory) -> None:
    sup = supervisor()
    with sup.http() as http:
        pdf = tiny_pdf(["Quarterly report", "RGB sales rose (a lot)."])
        done = http.post(
            "/api/attachments/pdf-text", content=pdf, headers={"Content-Type": "application/pdf"}
        )
        assert done.status_code == 200, done.text
        body = done.json()
        assert body["pages"] == 1
        assert "Quarterly report" in body["text"]
        assert "RGB sales rose (a lot)." in body["text"]
        for data, code in (
            (b"hello, not a pdf", "invalid_pdf"),
            (b"%PDF-1.4\ngarbage", "invalid_pdf"),
            (tiny_pdf([]), "pdf_no_text"),
        ):
            refused = http.post("/api/attachments/pdf-text", content=data)
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["code"] == code
