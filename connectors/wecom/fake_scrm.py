"""The fake's customer-contact (客户联系, ``externalcontact/*``) APIs, a mixin of FakeWeCom."""
from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any, Callable

from connectors.wecom.fake_state import Call, Corp, FakeError

SCOPE = "externalcontact"
#: one batch/get_by_user page at most (WeCom: limit <= 100, default 50)
MAX_PAGE = 100


def _tags_of(corp: Corp, follow: dict[str, Any]) -> list[dict[str, Any]]:
    tags = []
    for tag_id in follow["tag_id"]:
        found = corp.tag(tag_id)
        if found:
            tags.append({"group_name": found[0]["group_name"], "tag_name": found[1]["name"], "tag_id": tag_id, "type": 1})
    return tags


def _follow_info(follow: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in follow.items() if k != "userid"}


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"off:{offset}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise FakeError(40058, "invalid cursor") from None
    if not text.startswith("off:") or not text[4:].isdigit():
        raise FakeError(40058, "invalid cursor")
    return int(text[4:])


class ScrmApi:
    """Handlers for customers, corp tags, welcome and mass messages, and contact ways."""

    now: Callable[[], float]
    _ids: Any

    def scrm_apis(self) -> dict[str, tuple[str, str, Any]]:
        """API name -> (method, permission scope, handler)."""
        return {f"externalcontact/{name}": (method, SCOPE, handler) for name, method, handler in (
            ("list", "GET", self.ext_list),
            ("get", "GET", self.ext_get),
            ("batch/get_by_user", "POST", self.ext_batch_get_by_user),
            ("remark", "POST", self.ext_remark),
            ("get_corp_tag_list", "POST", self.ext_get_corp_tag_list),
            ("add_corp_tag", "POST", self.ext_add_corp_tag),
            ("edit_corp_tag", "POST", self.ext_edit_corp_tag),
            ("del_corp_tag", "POST", self.ext_del_corp_tag),
            ("mark_tag", "POST", self.ext_mark_tag),
            ("send_welcome_msg", "POST", self.ext_send_welcome_msg),
            ("add_msg_template", "POST", self.ext_add_msg_template),
            ("add_contact_way", "POST", self.ext_add_contact_way),
            ("get_contact_way", "POST", self.ext_get_contact_way),
        )}

    # ------------------------------------------------------------------ customers
    @staticmethod
    def _customer(call: Call, external_userid: Any) -> dict[str, Any]:
        if not external_userid:
            raise FakeError(40058, "missing required parameter: external_userid")
        contact = call.corp.customers.get(str(external_userid))
        if contact is None:
            raise FakeError(40096, f"invalid external userid: {external_userid}")
        return contact

    @staticmethod
    def _follow(call: Call, userid: Any, external_userid: Any) -> dict[str, Any]:
        call.user(userid)
        ScrmApi._customer(call, external_userid)
        follow = call.corp.follows.get((str(userid), str(external_userid)))
        if follow is None:
            raise FakeError(84061, "not external contact")
        return follow

    def ext_list(self, call: Call) -> dict[str, Any]:
        """``GET externalcontact/list?userid=``: the member's customers (ids only, no paging)."""
        userid = call.user(call.query.get("userid"))["userid"]
        return {"external_userid": [ext for (uid, ext) in call.corp.follows if uid == userid]}

    def ext_get(self, call: Call) -> dict[str, Any]:
        """``GET externalcontact/get?external_userid=``: the customer and every member following them."""
        contact = self._customer(call, call.query.get("external_userid"))
        follows = [{**f, "tags": _tags_of(call.corp, f)} for (uid, ext), f in call.corp.follows.items()
                   if ext == contact["external_userid"]]
        for follow in follows:
            follow.pop("tag_id")
        return {"external_contact": dict(contact), "follow_user": follows, "next_cursor": ""}

    def ext_batch_get_by_user(self, call: Call) -> dict[str, Any]:
        """``POST externalcontact/batch/get_by_user``: customers of up to 100 members, cursor paging."""
        userids = call.body.get("userid_list")
        if userids is None and call.body.get("userid"):
            userids = [call.body["userid"]]
        if not isinstance(userids, list) or not userids or not all(isinstance(u, str) for u in userids):
            raise FakeError(41009, "missing userid_list")
        if len(userids) > 100:
            raise FakeError(40058, "userid_list holds more than 100 members")
        for userid in userids:
            call.user(userid)
        limit = call.body.get("limit", 50)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
            raise FakeError(40058, f"invalid limit: must be 1..{MAX_PAGE}")
        cursor = call.body.get("cursor") or ""
        offset = _decode_cursor(cursor) if cursor else 0
        follows = sorted(((ext, f) for (uid, ext), f in call.corp.follows.items() if uid in userids),
                         key=lambda pair: (pair[1]["createtime"], pair[0], pair[1]["userid"]))
        if offset > len(follows):
            raise FakeError(40058, "invalid cursor")
        page = follows[offset:offset + limit]
        items = [{"external_contact": dict(call.corp.customers[ext]),
                  "follow_info": {**_follow_info(f), "userid": f["userid"]}} for ext, f in page]
        more = offset + limit < len(follows)
        return {"external_contact_list": items, "next_cursor": _encode_cursor(offset + limit) if more else ""}

    def ext_remark(self, call: Call) -> dict[str, Any]:
        """``POST externalcontact/remark``: the member's remark, description, company and mobiles."""
        follow = self._follow(call, call.field("userid", str, code=41009), call.field("external_userid", str))
        changes = {k: call.body[k] for k in ("remark", "description", "remark_company", "remark_mobiles") if k in call.body}
        if not changes:
            raise FakeError(40058, "nothing to update: give remark, description, remark_company or remark_mobiles")
        limits = {"remark": 20, "description": 150, "remark_company": 20}
        for key, limit in limits.items():
            if key in changes and (not isinstance(changes[key], str) or len(changes[key]) > limit):
                raise FakeError(40058, f"invalid {key}: at most {limit} characters")
        if "remark_mobiles" in changes and not isinstance(changes["remark_mobiles"], list):
            raise FakeError(40058, "invalid remark_mobiles: a list of strings")
        if "remark_company" in changes:
            follow["remark_corp_name"] = changes.pop("remark_company")
        follow.update(changes)
        return {}

    # ------------------------------------------------------------------ corp tags
    def ext_get_corp_tag_list(self, call: Call) -> dict[str, Any]:
        """``POST externalcontact/get_corp_tag_list {tag_id[], group_id[]}`` (both optional filters)."""
        tag_ids, group_ids = call.body.get("tag_id") or [], call.body.get("group_id") or []
        groups = []
        for group in sorted(call.corp.tag_groups.values(), key=lambda g: g["order"]):
            if group_ids and group["group_id"] not in group_ids:
                continue
            tags = [t for t in group["tag"] if not tag_ids or t["id"] in tag_ids]
            if tag_ids and not tags:
                continue
            groups.append({**group, "tag": [dict(t) for t in tags]})
        return {"tag_group": groups}

    def ext_add_corp_tag(self, call: Call) -> dict[str, Any]:
        """``POST externalcontact/add_corp_tag``: tags into a group by id, or by name (created if new)."""
        tags = call.body.get("tag")
        if not isinstance(tags, list) or not tags or any(not isinstance(t, dict) or not t.get("name") for t in tags):
            raise FakeError(40058, "missing required parameter: tag[].name")
        corp, now = call.corp, int(self.now())
        group_id, group_name = call.body.get("group_id"), call.body.get("group_name")
        if group_id:
            group = corp.tag_groups.get(group_id)
            if group is None:
                raise FakeError(40068, f"invalid tag group id: {group_id}")
        elif group_name:
            group = next((g for g in corp.tag_groups.values() if g["group_name"] == group_name), None)
            if group is None:
                group_id = f"etGroup{next(self._ids):04d}"
                group = corp.tag_groups[group_id] = {"group_id": group_id, "group_name": group_name, "create_time": now,
                                                     "order": int(call.body.get("order") or 0), "tag": []}
        else:
            raise FakeError(40058, "missing required parameter: group_id or group_name")
        existing = {t["name"] for t in group["tag"]}
        created = []
        for tag in tags:
            if tag["name"] in existing or len(tag["name"]) > 30:
                raise FakeError(40071, f"tag name exists or too long: {tag['name']}")
            existing.add(tag["name"])
            item = {"id": f"etTag{next(self._ids):04d}", "name": tag["name"], "create_time": now,
                    "order": int(tag.get("order") or 0)}
            created.append(item)
        group["tag"].extend(created)
        return {"tag_group": {"group_id": group["group_id"], "group_name": group["group_name"],
                              "create_time": group["create_time"], "order": group["order"], "tag": created}}

    def ext_edit_corp_tag(self, call: Call) -> dict[str, Any]:
        """``POST externalcontact/edit_corp_tag {id, name?, order?}`` on a tag or a group."""
        target_id = call.field("id", str)
        if "name" not in call.body and "order" not in call.body:
            raise FakeError(40058, "nothing to update: give name or order")
        group = call.corp.tag_groups.get(target_id)
        found = call.corp.tag(target_id)
        target = group if group is not None else (found[1] if found else None)
        if target is None:
            raise FakeError(40068, f"invalid tagid: {target_id}")
        if "name" in call.body:
            target["group_name" if group is not None else "name"] = str(call.body["name"])
        if "order" in call.body:
            target["order"] = int(call.body["order"])
        return {}

    def ext_del_corp_tag(self, call: Call) -> dict[str, Any]:
        """``POST externalcontact/del_corp_tag {tag_id[], group_id[]}``: a group goes with its tags."""
        tag_ids, group_ids = call.body.get("tag_id") or [], call.body.get("group_id") or []
        if not tag_ids and not group_ids:
            raise FakeError(40058, "missing required parameter: tag_id or group_id")
        corp = call.corp
        for tag_id in tag_ids:
            if corp.tag(tag_id) is None:
                raise FakeError(40068, f"invalid tagid: {tag_id}")
        for group_id in group_ids:
            if group_id not in corp.tag_groups:
                raise FakeError(40068, f"invalid tag group id: {group_id}")
        removed = set(tag_ids)
        for group_id in group_ids:
            removed |= {t["id"] for t in corp.tag_groups.pop(group_id)["tag"]}
        for group_id, group in list(corp.tag_groups.items()):
            group["tag"] = [t for t in group["tag"] if t["id"] not in removed]
            if not group["tag"]:  # WeCom drops a group whose last tag is deleted
                del corp.tag_groups[group_id]
        for follow in corp.follows.values():
            follow["tag_id"] = [t for t in follow["tag_id"] if t not in removed]
        return {}

    def ext_mark_tag(self, call: Call) -> dict[str, Any]:
        """``POST externalcontact/mark_tag {userid, external_userid, add_tag[], remove_tag[]}``."""
        follow = self._follow(call, call.field("userid", str, code=41009), call.field("external_userid", str))
        add, remove = call.body.get("add_tag") or [], call.body.get("remove_tag") or []
        if not add and not remove:
            raise FakeError(40058, "add_tag and remove_tag cannot both be empty")
        for tag_id in [*add, *remove]:
            if call.corp.tag(str(tag_id)) is None:
                raise FakeError(40068, f"invalid tagid: {tag_id}")
        kept = [t for t in follow["tag_id"] if t not in remove]
        follow["tag_id"] = kept + [t for t in add if t not in kept]
        return {}

    # ------------------------------------------------------------------ outreach
    @staticmethod
    def _message_content(body: dict[str, Any]) -> dict[str, Any]:
        content = {k: body[k] for k in ("text", "image", "link", "miniprogram", "attachments") if body.get(k)}
        if not content:
            raise FakeError(40058, "missing required parameter: text or attachments")
        text = content.get("text")
        if text is not None and (not isinstance(text, dict) or not text.get("content")):
            raise FakeError(44004, "empty content")
        attachments = content.get("attachments", [])
        if not isinstance(attachments, list) or len(attachments) > 9:
            raise FakeError(40058, "attachments: at most 9")
        for item in attachments:
            kind = item.get("msgtype") if isinstance(item, dict) else None
            if kind not in ("image", "link", "miniprogram", "video", "file") or not isinstance(item.get(kind), dict):
                raise FakeError(40058, "invalid attachment: msgtype image, link, miniprogram, video or file")
        return content

    def ext_send_welcome_msg(self, call: Call) -> dict[str, Any]:
        """``POST externalcontact/send_welcome_msg``: once per code, within 20 s of the add event."""
        code = call.field("welcome_code", str)
        content = self._message_content(call.body)
        grant = call.corp.welcome_codes.get(code)
        if grant is None or grant["used"] or grant["expires_at"] <= self.now():
            raise FakeError(41051, "welcome_code invalid, expired or already used")
        grant["used"] = True
        call.corp.welcome_messages.append({"userid": grant["userid"], "external_userid": grant["external_userid"], **content})
        return {}

    def ext_add_msg_template(self, call: Call) -> dict[str, Any]:
        """``POST externalcontact/add_msg_template``: a mass-send task the sender confirms in the client."""
        chat_type = call.body.get("chat_type", "single")
        if chat_type not in ("single", "group"):
            raise FakeError(40058, "invalid chat_type")
        sender = call.body.get("sender")
        if sender:
            call.user(sender)
        elif chat_type == "group":
            raise FakeError(40058, "missing required parameter: sender (for chat_type group)")
        content = self._message_content(call.body)
        targets = call.body.get("external_userid") or []
        if not isinstance(targets, list) or len(targets) > 10000:
            raise FakeError(40058, "invalid external_userid: a list of at most 10000")
        if not targets and not sender:
            raise FakeError(40058, "give external_userid or sender")
        fail = [ext for ext in targets if ext not in call.corp.customers
                or (sender and (sender, ext) not in call.corp.follows)]
        msgid = f"msgTpl{next(self._ids):06d}"
        call.corp.msg_templates[msgid] = {"chat_type": chat_type, "sender": sender, "external_userid": targets,
                                          "fail_list": fail, **content}
        return {"fail_list": fail, "msgid": msgid}

    def ext_add_contact_way(self, call: Call) -> dict[str, Any]:
        """``POST externalcontact/add_contact_way``: a "contact me" button or QR code with a `state`."""
        kind, scene = call.body.get("type"), call.body.get("scene")
        if kind not in (1, 2):
            raise FakeError(40058, "invalid type: 1 (single) or 2 (multiple)")
        if scene not in (1, 2):
            raise FakeError(40058, "invalid scene: 1 (mini program) or 2 (QR code)")
        users, parties = call.body.get("user") or [], call.body.get("party") or []
        if not users and not parties:
            raise FakeError(40058, "missing required parameter: user or party")
        if kind == 1 and (len(users) != 1 or parties):
            raise FakeError(40058, "type 1 takes exactly one user")
        for userid in users:
            call.user(userid)
        for party in parties:
            if party not in call.corp.departments:
                raise FakeError(60123, f"invalid party: {party}")
        state = call.body.get("state") or ""
        if not isinstance(state, str) or len(state) > 30:
            raise FakeError(40058, "invalid state: at most 30 characters")
        config_id = secrets.token_hex(16)
        way = {"config_id": config_id, "type": kind, "scene": scene, "style": call.body.get("style", 1),
               "remark": call.body.get("remark", ""), "skip_verify": call.body.get("skip_verify", True), "state": state,
               "user": users, "party": parties, "is_temp": bool(call.body.get("is_temp", False)),
               "expires_in": call.body.get("expires_in", 7 * 86400)}
        if scene == 2:
            way["qr_code"] = f"https://wework.qpic.cn/wwpic/fake/{config_id}/0"
        call.corp.contact_ways[config_id] = way
        return {"config_id": config_id, **({"qr_code": way["qr_code"]} if scene == 2 else {})}

    def ext_get_contact_way(self, call: Call) -> dict[str, Any]:
        """``POST externalcontact/get_contact_way {config_id}``."""
        config_id = call.field("config_id", str)
        way = call.corp.contact_ways.get(config_id)
        if way is None:
            raise FakeError(41044, f"invalid config_id: {config_id}")
        return {"contact_way": dict(way)}
