/**
 * opsloop sidebar for JupyterLab 4: open incidents and runbooks.
 *
 * Click 1 selects an open incident (its suggested runbook comes first); click 2 on a
 * runbook asks the server extension for a copy with the incident filled in, opens it in a
 * tab and runs it. Every request goes through ServerConnection, so Jupyter's token and
 * XSRF cookie are sent as for any Jupyter API call.
 */
import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><path class="jp-icon3" fill="#616161" d="M12 2a10 10 0 1 0 10 10h-2a8 8 0 1 1-2.34-5.66L15 9h7V2l-2.93 2.93A9.97 9.97 0 0 0 12 2zm-1 5v6l5 3 .75-1.23L12.5 12V7z"/></svg>';

const opsloopIcon = new LabIcon({ name: 'opsloop:icon', svgstr: ICON_SVG });

interface Incident {
  id: string;
  title: string;
  severity: string;
  subject: string;
  status: string;
  created_at: string;
  runbooks: string[];
}

interface Runbook {
  name: string;
  summary: string;
}

async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'opsloop', 'api', path);
  const response = await ServerConnection.makeRequest(url, init, settings);
  const data = await response.json();
  if (!response.ok) {
    throw new Error(data.error || data.message || response.statusText);
  }
  return data as T;
}

class OpsloopPanel extends Widget {
  private incidents: Incident[] = [];
  private runbooks: Runbook[] = [];
  private selected: string | null = null;

  constructor(private app: JupyterFrontEnd) {
    super();
    this.id = 'opsloop-panel';
    this.addClass('opsloop-panel');
    this.title.icon = opsloopIcon;
    this.title.caption = 'opsloop: incidents and runbooks';
    void this.refresh();
  }

  async refresh(): Promise<void> {
    try {
      const [inc, rb] = await Promise.all([
        api<{ incidents: Incident[] }>('incidents'),
        api<{ runbooks: Runbook[] }>('runbooks')
      ]);
      this.incidents = inc.incidents;
      this.runbooks = rb.runbooks;
      if (this.selected === null && this.incidents.length > 0) {
        this.selected = null;
      }
      this.render();
    } catch (err) {
      this.node.innerHTML = '';
      const p = document.createElement('p');
      p.className = 'opsloop-error';
      p.textContent = `opsloop: ${(err as Error).message}`;
      this.node.appendChild(p);
    }
  }

  private render(): void {
    const node = this.node;
    node.innerHTML = '';
    const head = document.createElement('h3');
    head.textContent = 'Open incidents';
    const refresh = document.createElement('button');
    refresh.textContent = '↻';
    refresh.title = 'Refresh';
    refresh.className = 'opsloop-refresh';
    refresh.onclick = () => void this.refresh();
    head.appendChild(refresh);
    node.appendChild(head);
    if (this.incidents.length === 0) {
      const none = document.createElement('p');
      none.textContent = 'No open incidents.';
      node.appendChild(none);
    }
    for (const inc of this.incidents) {
      const div = document.createElement('div');
      div.className = 'opsloop-incident';
      div.dataset.incident = inc.id;
      if (inc.id === this.selected) {
        div.classList.add('opsloop-selected');
      }
      const sev = document.createElement('span');
      sev.className = `opsloop-sev opsloop-sev-${inc.severity}`;
      sev.textContent = inc.severity;
      const title = document.createElement('span');
      title.className = 'opsloop-title';
      title.textContent = inc.title;
      const meta = document.createElement('div');
      meta.innerHTML = '';
      const small = document.createElement('small');
      small.textContent = `${inc.id} · ${inc.status} · ${inc.subject}`;
      meta.appendChild(small);
      div.append(sev, title, meta);
      div.onclick = () => {
        this.selected = inc.id;
        this.render();
      };
      node.appendChild(div);
    }
    const rbHead = document.createElement('h3');
    const current = this.incidents.find(i => i.id === this.selected);
    rbHead.textContent = current
      ? `Runbooks for ${current.id}`
      : 'Runbooks (select an incident first)';
    node.appendChild(rbHead);
    const suggested = current ? current.runbooks : [];
    const ordered = [
      ...this.runbooks.filter(r => suggested.includes(r.name)),
      ...this.runbooks.filter(r => !suggested.includes(r.name))
    ];
    for (const rb of ordered) {
      const button = document.createElement('button');
      button.className = 'opsloop-runbook jp-Button';
      button.dataset.runbook = rb.name;
      if (suggested.includes(rb.name)) {
        button.classList.add('opsloop-suggested');
      }
      button.disabled = !current;
      button.textContent = rb.name;
      const summary = document.createElement('small');
      summary.textContent = rb.summary;
      button.appendChild(summary);
      button.onclick = () => void this.openRunbook(rb.name);
      node.appendChild(button);
    }
    const status = document.createElement('p');
    status.className = 'opsloop-panel-status';
    node.appendChild(status);
  }

  private async openRunbook(name: string): Promise<void> {
    if (!this.selected) {
      return;
    }
    const status = this.node.querySelector('.opsloop-panel-status');
    try {
      const { path } = await api<{ path: string }>('open', {
        method: 'POST',
        body: JSON.stringify({ runbook: name, incident_id: this.selected })
      });
      const widget: any = await this.app.commands.execute('docmanager:open', {
        path,
        factory: 'Notebook'
      });
      if (status) {
        status.textContent = `opened ${path}`;
      }
      if (widget && widget.context) {
        await widget.context.ready;
        await widget.sessionContext.ready;
        this.app.shell.activateById(widget.id);
        await this.app.commands.execute('notebook:run-all-cells');
      }
    } catch (err) {
      if (status) {
        status.textContent = `opsloop: ${(err as Error).message}`;
        status.classList.add('opsloop-error');
      }
    }
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'opsloop-jupyter:panel',
  description: 'A sidebar of open incidents and runbooks from the opsloop project.',
  autoStart: true,
  optional: [ILabShell],
  activate: (app: JupyterFrontEnd) => {
    const panel = new OpsloopPanel(app);
    app.shell.add(panel, 'left', { rank: 900 });
  }
};

export default plugin;
