import test from 'ava';
import { driverSuite } from '../helpers/suite.js';

driverSuite(test, 'posix');
