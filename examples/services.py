"""Small services that meet the HTTP contract: text extraction, sentiment analysis and
notifications.

They stand in for the guide's `text-extraction` and `sentiment-analysis` services:
`POST /text-extraction/extract` and `POST /sentiment-analysis/analyze`, plus
`POST /notifications/send` for the workflow-language examples, each with a
`GET .../health`. Run them with `service-integration examples` (port 8006).
`missing.pdf` is a document text extraction answers 404 for (error routes).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel

DOCUMENTS = {
    "document.pdf": "The new release is excellent. Setup was easy and the team is happy "
    "with the great results.",
    "complaint.pdf": "The delivery was late and the product arrived broken. A terrible, "
    "disappointing experience.",
    "memo.pdf": "The meeting is moved to Tuesday at ten in room four.",
}
DEFAULT_TEXT = "This document has no text we know; it is neither good nor bad."

POSITIVE = {"excellent", "easy", "happy", "great", "good", "love", "fast", "reliable", "success"}
NEGATIVE = {"late", "broken", "terrible", "disappointing", "bad", "slow", "fail", "hate", "poor"}


class ExtractRequest(BaseModel):
    document_url: str
    language: str | None = None


class AnalyzeRequest(BaseModel):
    text: str


class NotifyRequest(BaseModel):
    channel: str
    message: str


MISSING_DOCUMENT = "missing.pdf"


def extract_text(document_url: str) -> str:
    """The text of a known example document, looked up by the URL's last path segment."""
    name = document_url.rstrip("/").rsplit("/", 1)[-1]
    return DOCUMENTS.get(name, DEFAULT_TEXT)


def analyze_sentiment(text: str) -> tuple[str, float]:
    """A lexicon score in [-1, 1]: (positive - negative) / matched words."""
    words = re.findall(r"[a-z']+", text.lower())
    positive = sum(w in POSITIVE for w in words)
    negative = sum(w in NEGATIVE for w in words)
    matched = positive + negative
    score = 0.0 if matched == 0 else round((positive - negative) / matched, 3)
    label = "positive" if score > 0.1 else "negative" if score < -0.1 else "neutral"
    return label, score


def create_app() -> FastAPI:
    app = FastAPI(title="Service Integration example services")

    @app.post("/text-extraction/extract")
    async def extract(
        body: ExtractRequest, x_request_id: str | None = Header(default=None)
    ) -> dict[str, Any]:
        if body.document_url.rstrip("/").endswith(MISSING_DOCUMENT):
            raise HTTPException(status_code=404, detail=f"no document at {body.document_url}")
        text = extract_text(body.document_url)
        return {
            "text": text,
            "metadata": {"characters": len(text), "language": body.language or "en"},
        }

    @app.post("/sentiment-analysis/analyze")
    async def analyze(body: AnalyzeRequest) -> dict[str, Any]:
        sentiment, score = analyze_sentiment(body.text)
        return {"sentiment": sentiment, "score": score}

    @app.post("/notifications/send")
    async def send(body: NotifyRequest) -> dict[str, Any]:
        return {"sent": True, "channel": body.channel, "characters": len(body.message)}

    @app.get("/text-extraction/health")
    @app.get("/sentiment-analysis/health")
    @app.get("/notifications/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main(*, host: str = "127.0.0.1", port: int = 8006) -> None:
    import uvicorn

    uvicorn.run(create_app(), host=host, port=port, log_level="warning")


if __name__ == "__main__":
    main()
