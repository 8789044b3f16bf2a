/** The shell: language, login state, navigation and the page for the current path. */
import { useEffect, useMemo, useState } from "react";
import { api, getToken, setToken } from "./api/client";
import { I18n, Lang, initialLang, storeLang, translator, useI18n } from "./i18n";
import { match, navigate, useLocation } from "./router";
import Login from "./pages/Login";
import FlowList from "./pages/FlowList";
import Editor from "./editor/Editor";
import RunView from "./pages/RunView";
import Runs from "./pages/Runs";
import Connections from "./pages/Connections";
import Audit from "./pages/Audit";
import Tables from "./pages/Tables";

function useToken(): string | null {
  const [token, set] = useState(getToken);
  useEffect(() => {
    const update = () => set(getToken());
    window.addEventListener("flowlink:auth", update);
    return () => window.removeEventListener("flowlink:auth", update);
  }, []);
  return token;
}

function Page({ path }: { path: string }) {
  const { t } = useI18n();
  let params;
  if (path === "/" || path === "/flows") return <FlowList />;
  if ((params = match("/flows/:id", path))) return <Editor flowId={params.id} />;
  if (path === "/runs") return <Runs />;
  if ((params = match("/runs/:id", path))) return <RunView runId={params.id} />;
  if (path === "/connections") return <Connections />;
  if (path === "/audit") return <Audit />;
  if (path === "/tables") return <Tables />;
  return <p className="page">{t("notFound")}</p>;
}

export default function App() {
  const [lang, setLangState] = useState<Lang>(initialLang);
  const i18n = useMemo(() => ({ lang, t: translator(lang), setLang: (l: Lang) => { storeLang(l); setLangState(l); } }), [lang]);
  const token = useToken();
  const { path } = useLocation();
  const t = i18n.t;
  useEffect(() => storeLang(lang), [lang]);

  const logout = async () => {
    await api.POST("/api/auth/logout").catch(() => undefined);
    setToken(null);
  };
  const link = (to: string, label: string) => (
    <a href={to} className={path === to || (to !== "/" && path.startsWith(to)) ? "current" : ""}
       onClick={(e) => { e.preventDefault(); navigate(to); }}>{label}</a>
  );
  return (
    <I18n.Provider value={i18n}>
      {!token ? (
        <Login />
      ) : (
        <div className="app">
          <header className="topbar">
            <strong className="brand">Flowlink</strong>
            <nav>
              {link("/", t("flows"))}
              {link("/runs", t("runs"))}
              {link("/connections", t("connections"))}
              {link("/tables", t("tables"))}
              {link("/audit", t("audit"))}
            </nav>
            <span className="spacer" />
            <button className="link" onClick={() => i18n.setLang(lang === "en" ? "zh-CN" : "en")}>{t("language")}</button>
            <button className="link" onClick={logout}>{t("logout")}</button>
          </header>
          <main>
            <Page path={path} />
          </main>
        </div>
      )}
    </I18n.Provider>
  );
}
