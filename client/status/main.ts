import { mount } from 'svelte';
import './global.css';
import App from './app.svelte';

mount(App, { target: document.getElementById('app')! });
