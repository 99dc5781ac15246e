"""Embeddings (a sentence-transformers directory) and reranking (a cross-encoder).

sentence-transformers runs the model's own module pipeline (transformer, pooling, normalise,
as modules.json says), so Corral's vectors are the library's vectors. Inputs longer than the
model takes are refused rather than truncated: a silently truncated input would embed text
the client did not send.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from corral.child.runtime import EncodeJob, RequestFailed
from corral.protocol import MAX_FRAME_BYTES
from corral.protocol.messages import Embed, Embeddings, Rerank, Scores, Usage

BATCH_SIZE = 32


def _check_lengths(lengths: Sequence[int], limit: int, what: str) -> None:
    for index, length in enumerate(lengths):
        if length > limit:
            raise RequestFailed(
                "context_length_exceeded",
                f"{what} {index} has {length} tokens; this model takes at most {limit}",
            )


def _b64(vector: Any) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


class EmbeddingModel:
    def __init__(
        self, directory: str, device: str, trust_remote_code: bool, model_kwargs: dict[str, Any]
    ) -> None:
        from sentence_transformers import SentenceTransformer  # heavy; only for this task

        self.model = SentenceTransformer(
            directory,
            device=device,
            local_files_only=True,
            trust_remote_code=trust_remote_code,
            model_kwargs=model_kwargs or None,
        )
        self.dimension = int(self.model.get_embedding_dimension() or 0)
        self.max_tokens = int(self.model.max_seq_length or 512)
        # Frames stay well under the protocol's limit: a base64 vector is 4/3 of its bytes.
        self._per_frame = max(1, (MAX_FRAME_BYTES // 2) // (self.dimension * 6 + 8))

    def encode(self, job: EncodeJob) -> Usage:
        request = job.request
        assert isinstance(request, Embed)
        if request.dimensions is not None and request.dimensions != self.dimension:
            raise RequestFailed(
                "invalid_dimensions",
                f"this model's embeddings have {self.dimension} dimensions and cannot be "
                f"shortened to {request.dimensions}",
            )
        if request.token_ids:
            lengths = [len(ids) for ids in request.token_ids]
        else:
            tokenizer = self.model.tokenizer
            lengths = [len(ids) for ids in tokenizer(list(request.texts))["input_ids"]]
        _check_lengths(lengths, self.max_tokens, "input")
        job.started(sum(lengths))
        count = len(request.token_ids) or len(request.texts)
        for start in range(0, count, BATCH_SIZE):
            if job.cancelled.is_set():
                break
            stop = min(start + BATCH_SIZE, count)
            if request.token_ids:
                vectors = self._embed_ids(request.token_ids[start:stop])
            else:
                vectors = self.model.encode(
                    list(request.texts[start:stop]),
                    batch_size=BATCH_SIZE,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            for first in range(0, len(vectors), self._per_frame):
                chunk = vectors[first : first + self._per_frame]
                job.channel.send(
                    Embeddings(
                        request_id=job.request_id,
                        start=start + first,
                        vectors=tuple(_b64(v) for v in chunk),
                    )
                )
        return Usage(prompt_tokens=sum(lengths), completion_tokens=0)

    def _embed_ids(self, batch: Sequence[Sequence[int]]) -> Any:
        """Token ids as the client sent them (no special tokens added) through the modules."""
        tokenizer = self.model.tokenizer
        vocab = len(tokenizer)
        if any(t < 0 or t >= vocab for ids in batch for t in ids):
            raise RequestFailed("invalid_input", f"token ids are 0..{vocab - 1} for this model")
        width = max(len(ids) for ids in batch)
        pad = tokenizer.pad_token_id or 0
        input_ids = torch.tensor([[*ids, *[pad] * (width - len(ids))] for ids in batch])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in batch])
        features = {
            "input_ids": input_ids.to(self.model.device),
            "attention_mask": mask.to(self.model.device),
        }
        if "token_type_ids" in tokenizer.model_input_names:  # BERT has them; others do not
            features["token_type_ids"] = torch.zeros_like(features["input_ids"])
        with torch.inference_mode():
            out = self.model(features)["sentence_embedding"]
        return out.float().cpu().numpy()


class RerankModel:
    def __init__(
        self, directory: str, device: str, trust_remote_code: bool, model_kwargs: dict[str, Any]
    ) -> None:
        from sentence_transformers import CrossEncoder  # heavy; only for this task

        self.model = CrossEncoder(
            directory,
            device=device,
            local_files_only=True,
            trust_remote_code=trust_remote_code,
            model_kwargs=model_kwargs or None,
        )
        labels = int(self.model.config.num_labels)
        if labels != 1:
            raise ValueError(f"a reranker scores with one label; this model has {labels}")
        # A tokenizer without a limit says 1e30; the position embeddings are the real one.
        positions = getattr(self.model.config, "max_position_embeddings", None) or 512
        self.max_tokens = min(
            int(self.model.max_length or positions),
            int(min(self.model.tokenizer.model_max_length, positions)),
        )

    def encode(self, job: EncodeJob) -> Usage:
        request = job.request
        assert isinstance(request, Rerank)
        pairs = [(request.query, document) for document in request.documents]
        tokenized = self.model.tokenizer(
            [q for q, _ in pairs], [d for _, d in pairs], truncation=False
        )
        lengths = [len(ids) for ids in tokenized["input_ids"]]
        _check_lengths(lengths, self.max_tokens, "document")
        job.started(sum(lengths))
        scores = self.model.predict(
            pairs, batch_size=BATCH_SIZE, convert_to_numpy=True, show_progress_bar=False
        )
        job.channel.send(Scores(request_id=job.request_id, scores=tuple(float(s) for s in scores)))
        return Usage(prompt_tokens=sum(lengths), completion_tokens=0)
