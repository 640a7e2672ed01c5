"""The organisation's own words in the plan document (应急处置预案).

The generated document's prose (purpose, scope, what each category covers, what each
role does at each of the five stages of the response, the closing words) defaults to
the plan the product was built from. An organisation writes its own in the inventory's
``wording`` section, keyed by what the text is, in one language or both::

    wording:
      purpose:
        zh: 为确保本单位信息系统在突发事件中能够迅速、有效地进行应急处置……
        en: To make sure our systems are handled quickly and well in an emergency…
      scope: {zh: 本预案适用于数据中心及两个分支机构的信息系统。}
      category.network: {zh: 包括机房出口、专线及分支机构链路中断。}
      stage.respond.user_service: {zh: 通过短信和门户公告通知受影响的用户。}

Keys (``KEYS``): ``purpose``, ``scope``, ``closing``, ``training``, ``revision``;
``category.<category>`` (``CATEGORIES``); ``stage.<stage>`` (what happens at that stage)
and ``stage.<stage>.<role>`` (that role's duty there), with ``STAGES`` and the roles of
``inventory.models.RoleName``. A key the document does not use is an error.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from inventory.severity import ROLES

STAGES = ("detect", "triage", "respond", "recover", "review")
"""The five stages of the response (应急处置流程): 事件发现与报告, 初步判断, 应急响应,
问题解决与恢复, 事后处理与总结."""
CATEGORIES: dict[str, tuple[str, ...]] = {
    "system": ("hardware_failure", "software_crash"),
    "network": ("network_outage",),
    "data": ("data_loss",),
    "security": ("security_incident",),
    "other": ("runbook",),
}
"""The plan's five categories (应急预案分类) and the automated plans under each."""
KEYS = frozenset(
    ["purpose", "scope", "closing", "training", "revision"]
    + [f"category.{c}" for c in CATEGORIES]
    + [f"stage.{s}" for s in STAGES]
    + [f"stage.{s}.{r}" for s in STAGES for r in ROLES]
)


class Wording(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """What the text is (the section key, one of ``KEYS``)."""
    zh: str = Field("", max_length=2000)
    en: str = Field("", max_length=2000)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in KEYS:
            near = sorted(k for k in KEYS if k.split(".")[:2] == name.split(".")[:2])
            hint = f"; e.g. {', '.join(near[:4])}" if near else ""
            raise ValueError(f"{name!r} is not a text of the plan document{hint}")
        return name

    @model_validator(mode="after")
    def _some_text(self) -> Wording:
        if not (self.zh.strip() or self.en.strip()):
            raise ValueError("give the text in zh, en or both")
        return self

    def text(self, lang: str) -> str:
        """The text in ``lang``; the other language's only if that is all there is."""
        return (self.zh if lang == "zh" else self.en).strip() or (self.en or self.zh).strip()
