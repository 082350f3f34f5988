"""The HTTP API's contract: pydantic models of every request and response of :mod:`llmguide.serve`, with the
server's limits as field constraints, and how a validation error becomes one line naming the field.

Strict models (``"3"`` is not ``3``, unknown fields are errors, no NaN/inf) so that a bad request gets a
422 that says what to fix, never a wrong answer; the OpenAPI schema at ``/openapi.json`` is generated from
them (schemathesis checks the service against it in ``tests/test_serve.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Annotated, Any

from llmguide.generate import check_sampling

if TYPE_CHECKING:
    from llmguide.serve import ServeConfig


def api_schemas(config: ServeConfig) -> Any:
    """Pydantic models of every request and response, with the limits of ``config`` as field constraints."""
    try:
        from pydantic import BaseModel, ConfigDict, Field, field_validator
    except ImportError:
        raise ImportError("llmguide serve needs FastAPI: pip install 'llmguide[serve]'") from None

    strict = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)  # "3" is not 3, unknown fields are errors
    Text = Annotated[str, Field(min_length=1, max_length=config.max_text_chars)]
    Stop = Annotated[str, Field(min_length=1, max_length=64)]

    class ClassifyRequest(BaseModel):
        model_config = strict
        texts: list[Text] = Field(min_length=1, max_length=config.max_texts, description="texts to classify")
        model: str | None = Field(None, description="a classifier's id from /v1/models (default: the one loaded)")
        truncate: bool = Field(True, description="cut texts past the model's context (reported per text); "
                                                 "false: such a text is a 422 error")

    class ClassifyResult(BaseModel):
        label: str
        probability: float
        probabilities: dict[str, float]
        tokens: int = Field(description="tokens the model read")
        truncated: bool = Field(description="the text was longer than the model's context and was cut")

    class ClassifyResponse(BaseModel):
        id: str
        object: str = "classification"
        model: str
        results: list[ClassifyResult]
        truncated: int = Field(description="how many texts were cut to the model's context")

    class CompletionRequest(BaseModel):
        model_config = strict
        model: str | None = Field(None, description="a language model's id from /v1/models (default: the one loaded)")
        prompt: str = Field(min_length=1, max_length=config.max_prompt_chars)
        max_tokens: int = Field(16, ge=0, le=config.max_tokens)
        # Tiny positive values overflow the sampling (logits / 1e-300 = inf, a top_p that is 0 in float32):
        # the limits say where the arithmetic stops being meaningful.
        temperature: float = Field(1.0, ge=0, le=2, description="0 = greedy, else in [0.01, 2]")
        top_p: float = Field(1.0, ge=1e-6, le=1)
        seed: int | None = Field(None, ge=0, le=2**63 - 1, description="the same seed gives the same text")
        stop: Stop | list[Stop] | None = Field(None, max_length=4, description="stop before any of these strings")
        stream: bool = Field(False, description="answer with server-sent events, ending `data: [DONE]`")
        n: int = Field(1, ge=1, le=1, description="one completion per request")
        user: str | None = Field(None, max_length=256, description="accepted for OpenAI compatibility; unused")

        @field_validator("temperature")
        @classmethod
        def _not_tiny(cls, value: float) -> float:
            if 0 < value < 0.01:  # this server's limit, stricter than the library's
                raise ValueError(f"must be 0 (greedy) or at least 0.01, got {value!r}")
            check_sampling(value)  # and the library's rule (finite, 0 or >= MIN_TEMPERATURE) where sampling enters
            return value

    class Choice(BaseModel):
        text: str
        index: int = 0
        logprobs: None = None
        finish_reason: str | None

    class Usage(BaseModel):
        prompt_tokens: int
        completion_tokens: int
        total_tokens: int

    class CompletionResponse(BaseModel):
        id: str
        object: str = "text_completion"
        created: int
        model: str
        choices: list[Choice]
        usage: Usage | None = None

    class FeedbackRequest(BaseModel):
        model_config = strict
        id: str = Field(min_length=1, max_length=64, description="the id of a /v1/classify answer")
        index: int = Field(0, ge=0, lt=config.max_texts, description="which text of that request")
        label: str = Field(min_length=1, max_length=100, description="the label the user says is right")

    class ModelCard(BaseModel):
        id: str
        object: str = "model"
        created: int
        owned_by: str = "llmguide"
        kind: str
        block_size: int
        labels: list[str] | None = None

    class ModelList(BaseModel):
        object: str = "list"
        data: list[ModelCard]

    class Health(BaseModel):
        status: str
        models: dict[str, str]
        queue_depth: dict[str, int]
        api_key_required: bool

    class ErrorDetail(BaseModel):
        message: str
        type: str
        param: str | None = None
        code: int | None = None

    class ErrorResponse(BaseModel):
        error: ErrorDetail

    return SimpleNamespace(**{k: v for k, v in locals().items() if isinstance(v, type)})


def validation_message(errors: Sequence[dict]) -> tuple[str, str | None]:
    """One line from pydantic's errors: the first bad field, what is wrong (with the limit), the value."""
    err = errors[0]
    loc = [str(x) for x in err.get("loc", ()) if x != "body"]
    if err.get("type") == "json_invalid":
        return f"request body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')})", None
    param = ".".join(loc) or None
    got = repr(err.get("input"))
    got = got if len(got) <= 40 else got[:37] + "..."
    where = f"{param}: " if param else "body: "
    more = f" (and {len(errors) - 1} more problem{'s' * (len(errors) > 2)})" if len(errors) > 1 else ""
    return f"{where}{err.get('msg', 'invalid')} (got {got}){more}", param
