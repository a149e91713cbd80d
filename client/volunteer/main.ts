import { mount } from 'svelte';
import App from './App.svelte';
import { readSettings, sessionStore } from './settings.js';
import { VolunteerTab } from './volunteer.svelte.js';
import './volunteer.css';

const tab = new VolunteerTab(readSettings(location.search, navigator.hardwareConcurrency, sessionStore()));
mount(App, { target: document.getElementById('app')!, props: { tab } });
// Joins at once: nothing to click.
tab.start().catch((e: unknown) => {
  tab.fatal = `The volunteer could not start: ${e instanceof Error ? e.message : String(e)}`;
});
