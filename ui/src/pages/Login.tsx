/** Username and password for a session token. */
import { FormEvent, useState } from "react";
import { api, call, setToken } from "../api/client";
import { explain } from "../errors";
import { useI18n } from "../i18n";
import { Notice } from "../ui";

export default function Login() {
  const { t, lang, setLang } = useI18n();
  const [username, setUsername] = useState("admin");
  const [password, setPassword] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError("");
    try {
      const session = await call<{ token: string }>(api.POST("/api/auth/login", { body: { username, password } }));
      setToken(session.token);
    } catch (err) {
      setError((err as any).status === 401 ? t("loginFailed") : explain(err, t));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="login" onSubmit={submit}>
      <h1>Flowlink</h1>
      <label>{t("username")}<input name="username" value={username} onChange={(e) => setUsername(e.target.value)} autoComplete="username" /></label>
      <label>{t("password")}<input name="password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} autoComplete="current-password" /></label>
      <Notice kind="error">{error}</Notice>
      <button type="submit" className="primary" disabled={busy}>{t("login")}</button>
      <button type="button" className="link" onClick={() => setLang(lang === "en" ? "zh-CN" : "en")}>{t("language")}</button>
    </form>
  );
}
